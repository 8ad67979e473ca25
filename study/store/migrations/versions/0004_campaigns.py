"""added vc_ctt_campaigns, vc_ctt_invites and vc_ctt_sessions (campaigns with invite links)

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def _cascade(target: str) -> sa.ForeignKey:
    return sa.ForeignKey(target, ondelete="CASCADE")


def upgrade() -> None:
    op.create_table(
        "vc_ctt_campaigns",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("study_id", sa.Integer(), _cascade("vc_studies.id"), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("task", sa.String(10), nullable=False),
        sa.Column("display_s", sa.Float(), nullable=False),
        sa.Column("session_items", sa.Integer(), nullable=False),
        sa.Column("practice_items", sa.Integer(), nullable=False),
        sa.Column("attention_share", sa.Float(), nullable=False),
        sa.Column("trial_ids", sa.JSON(), nullable=True),
        sa.Column("is_open", sa.Boolean(), nullable=False),
        sa.Column("created", sa.DateTime(), nullable=False),
        sa.UniqueConstraint("study_id", "name", name="uq_vc_campaign_study_name"),
    )
    op.create_index("ix_vc_ctt_campaigns_study_id", "vc_ctt_campaigns", ["study_id"])
    op.create_table(
        "vc_ctt_invites",
        sa.Column("token", sa.String(64), primary_key=True),
        sa.Column("campaign_id", sa.Integer(), _cascade("vc_ctt_campaigns.id"), nullable=False),
        sa.Column("max_uses", sa.Integer(), nullable=True),
        sa.Column("uses", sa.Integer(), nullable=False),
        sa.Column("created", sa.DateTime(), nullable=False),
    )
    op.create_index("ix_vc_ctt_invites_campaign_id", "vc_ctt_invites", ["campaign_id"])
    op.create_table(
        "vc_ctt_sessions",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("campaign_id", sa.Integer(), _cascade("vc_ctt_campaigns.id"), nullable=False),
        sa.Column("token", sa.String(64), _cascade("vc_ctt_invites.token"), nullable=False),
        sa.Column("rater_id", sa.String(64), _cascade("vc_raters.id"), nullable=False, unique=True),
        sa.Column("display_name", sa.String(200), nullable=True),
        sa.Column("plan", sa.JSON(), nullable=False),
        sa.Column("practice", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("started", sa.DateTime(), nullable=False),
        sa.Column("finished", sa.DateTime(), nullable=True),
    )
    op.create_index("ix_vc_ctt_sessions_campaign_id", "vc_ctt_sessions", ["campaign_id"])
    op.create_index("ix_vc_ctt_sessions_token", "vc_ctt_sessions", ["token"])


def downgrade() -> None:
    raise NotImplementedError("the results store is never downgraded: restore a copy of the database")
