"""added vc_ctt_pair_votes (pairwise campaigns between trials)

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def _cascade(target: str) -> sa.ForeignKey:
    return sa.ForeignKey(target, ondelete="CASCADE")


def upgrade() -> None:
    op.create_table(
        "vc_ctt_pair_votes",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("rater_id", sa.String(64), _cascade("vc_raters.id"), nullable=False),
        sa.Column("item_a_id", sa.Integer(), _cascade("vc_ctt_items.id"), nullable=False),
        sa.Column("item_b_id", sa.Integer(), _cascade("vc_ctt_items.id"), nullable=False),
        sa.Column("winner_id", sa.Integer(), _cascade("vc_ctt_items.id"), nullable=False),
        sa.Column("response_ms", sa.Float(), nullable=True),
        sa.Column("created", sa.DateTime(), nullable=False),
        sa.UniqueConstraint("rater_id", "item_a_id", "item_b_id", name="uq_vc_pair_vote"),
    )
    op.create_index("ix_vc_ctt_pair_votes_rater_id", "vc_ctt_pair_votes", ["rater_id"])
    op.create_index("ix_vc_ctt_pair_votes_item_a_id", "vc_ctt_pair_votes", ["item_a_id"])
    op.create_index("ix_vc_ctt_pair_votes_item_b_id", "vc_ctt_pair_votes", ["item_b_id"])


def downgrade() -> None:
    raise NotImplementedError("the results store is never downgraded: restore a copy of the database")
