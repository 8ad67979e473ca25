"""added campaign recruiting settings, invite expiry and revocation, browser-bound sessions

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-08

Campaigns gain what a recruiting platform needs: the consent text, the completion and screened-out
codes, a completion URL, the names of the URL parameters that carry a participant's ids, and
whether raters take the colour-vision screen; and its practice items, fixed when it is made.
Invites gain an expiry and a revoked mark. Sessions gain the hash of the secret their browser holds
(an HTTP-only cookie), the participant's ids (one session per participant and campaign), whether
the rater was screened out, the seed that draws which side each item is shown on, and when consent
was given and the screen passed. A pairwise vote records the side the rater picked (its position
bias). Older rows keep NULL / false.
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    for name, kind in (
        ("consent_text", sa.Text()),
        ("completion_code", sa.String(100)),
        ("screened_code", sa.String(100)),
        ("completion_url", sa.Text()),
        ("id_params", sa.JSON()),
        ("practice_uids", sa.JSON()),
    ):
        op.add_column("vc_ctt_campaigns", sa.Column(name, kind, nullable=True))
    op.add_column("vc_ctt_campaigns", sa.Column("screen", sa.Boolean(), nullable=False, server_default=sa.false()))
    op.add_column("vc_ctt_invites", sa.Column("expires", sa.DateTime(), nullable=True))
    op.add_column("vc_ctt_invites", sa.Column("revoked", sa.Boolean(), nullable=False, server_default=sa.false()))
    for name, kind in (
        ("secret_hash", sa.String(64)),
        ("participant_id", sa.String(200)),
        ("external_study", sa.String(200)),
        ("external_session", sa.String(200)),
        ("seed", sa.String(32)),
        ("consented", sa.DateTime()),
        ("screen_passed", sa.DateTime()),
    ):
        op.add_column("vc_ctt_sessions", sa.Column(name, kind, nullable=True))
    op.add_column("vc_ctt_sessions", sa.Column("screened_out", sa.Boolean(), nullable=False, server_default=sa.false()))
    op.add_column("vc_ctt_pair_votes", sa.Column("choice", sa.String(10), nullable=True))
    op.create_index("ix_vc_ctt_sessions_secret_hash", "vc_ctt_sessions", ["secret_hash"], unique=True)
    op.create_index("uq_vc_ctt_sessions_participant", "vc_ctt_sessions", ["campaign_id", "participant_id"], unique=True)


def downgrade() -> None:
    raise NotImplementedError("the results store is never downgraded: restore a copy of the database")
