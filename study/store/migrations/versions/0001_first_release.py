"""first release: studies, trials, epochs, media, raters, CTT items and votes

Revision ID: 0001
Revises:
Create Date: 2026-11-26

The baseline: the seven tables as the first release made them, with `vc_media.kind` (later
`media_type`) and `vc_ctt_items.kind` (later `medium`), and CTT items without frame, split,
source and real_is_color.
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def _cascade(target: str) -> sa.ForeignKey:
    return sa.ForeignKey(target, ondelete="CASCADE")


def upgrade() -> None:
    op.create_table(
        "vc_studies",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False, unique=True),
        sa.Column("spec", sa.JSON(), nullable=False),
        sa.Column("objective", sa.String(100), nullable=False),
        sa.Column("mode", sa.String(3), nullable=False),
        sa.Column("created", sa.DateTime(), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("storage_path", sa.Text(), nullable=True),
        sa.Column("shards", sa.Text(), nullable=True),
    )
    op.create_table(
        "vc_trials",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("study_id", sa.Integer(), _cascade("vc_studies.id"), nullable=False),
        sa.Column("trial_id", sa.String(100), nullable=False),
        sa.Column("experiment", sa.String(100), nullable=True),
        sa.Column("config", sa.JSON(), nullable=False),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("started", sa.DateTime(), nullable=True),
        sa.Column("ended", sa.DateTime(), nullable=True),
        sa.Column("best_metrics", sa.JSON(), nullable=True),
        sa.Column("last_metrics", sa.JSON(), nullable=True),
        sa.Column("best_epoch", sa.Integer(), nullable=True),
        sa.Column("checkpoint", sa.Text(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.UniqueConstraint("study_id", "trial_id", name="uq_vc_trial_study_trial"),
    )
    op.create_index("ix_vc_trials_study_id", "vc_trials", ["study_id"])
    op.create_table(
        "vc_epochs",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("trial_pk", sa.Integer(), _cascade("vc_trials.id"), nullable=False),
        sa.Column("epoch", sa.Integer(), nullable=False),
        sa.Column("metrics", sa.JSON(), nullable=False),
        sa.Column("time", sa.DateTime(), nullable=False),
        sa.UniqueConstraint("trial_pk", "epoch", name="uq_vc_epoch_trial_epoch"),
    )
    op.create_index("ix_vc_epochs_trial_pk", "vc_epochs", ["trial_pk"])
    op.create_table(
        "vc_media",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("trial_pk", sa.Integer(), _cascade("vc_trials.id"), nullable=False),
        sa.Column("kind", sa.String(40), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("video_id", sa.String(200), nullable=True),
        sa.Column("clip", sa.Integer(), nullable=True),
        sa.Column("frame", sa.Integer(), nullable=True),
        sa.Column("created", sa.DateTime(), nullable=False),
        sa.UniqueConstraint("trial_pk", "path", name="uq_vc_media_trial_path"),
    )
    op.create_index("ix_vc_media_trial_pk", "vc_media", ["trial_pk"])
    op.create_table(
        "vc_raters",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(200), nullable=True, unique=True),
        sa.Column("created", sa.DateTime(), nullable=False),
    )
    op.create_table(
        "vc_ctt_items",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("uid", sa.String(64), nullable=False, unique=True),
        sa.Column("study_id", sa.Integer(), _cascade("vc_studies.id"), nullable=False),
        sa.Column("trial_pk", sa.Integer(), _cascade("vc_trials.id"), nullable=True),
        sa.Column("real_path", sa.Text(), nullable=False),
        sa.Column("fake_path", sa.Text(), nullable=False),
        sa.Column("kind", sa.String(10), nullable=False),
        sa.Column("is_attention", sa.Boolean(), nullable=False),
        sa.Column("video_id", sa.String(200), nullable=True),
        sa.Column("clip", sa.Integer(), nullable=True),
        sa.Column("created", sa.DateTime(), nullable=False),
    )
    op.create_index("ix_vc_ctt_items_study_id", "vc_ctt_items", ["study_id"])
    op.create_table(
        "vc_ctt_votes",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("rater_id", sa.String(64), _cascade("vc_raters.id"), nullable=False),
        sa.Column("item_id", sa.Integer(), _cascade("vc_ctt_items.id"), nullable=False),
        sa.Column("choice", sa.String(5), nullable=True),
        sa.Column("picked_real", sa.Boolean(), nullable=True),
        sa.Column("response_ms", sa.Float(), nullable=True),
        sa.Column("rating", sa.Integer(), nullable=True),
        sa.Column("mode", sa.String(10), nullable=False),
        sa.Column("created", sa.DateTime(), nullable=False),
        sa.UniqueConstraint("rater_id", "item_id", name="uq_vc_vote_rater_item"),
        sa.CheckConstraint("rating IS NULL OR (rating >= 1 AND rating <= 5)", name="ck_vc_vote_rating"),
    )
    op.create_index("ix_vc_ctt_votes_rater_id", "vc_ctt_votes", ["rater_id"])
    op.create_index("ix_vc_ctt_votes_item_id", "vc_ctt_votes", ["item_id"])


def downgrade() -> None:
    raise NotImplementedError("the results store is never downgraded: restore a copy of the database")
