"""added vc_ctt_items.frame, split, source and real_is_color (still frames, legacy footage)

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26

CTT items that show a still frame (`frame`), record their split and source video, and mark
black-and-white originals (`real_is_color` False: rating only). Items made before are colour
clips, hence the server default TRUE for the rows already there.
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("vc_ctt_items", sa.Column("frame", sa.Integer(), nullable=True))
    op.add_column("vc_ctt_items", sa.Column("split", sa.String(40), nullable=True))
    op.add_column("vc_ctt_items", sa.Column("source", sa.Text(), nullable=True))
    op.add_column("vc_ctt_items", sa.Column("real_is_color", sa.Boolean(), nullable=False, server_default=sa.true()))


def downgrade() -> None:
    raise NotImplementedError("the results store is never downgraded: restore a copy of the database")
