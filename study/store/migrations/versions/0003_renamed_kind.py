"""renamed vc_media.kind to media_type and vc_ctt_items.kind to medium

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01

Three meanings of "kind" got their own names. A plain RENAME COLUMN on SQLite and PostgreSQL alike:
batch mode would copy vc_ctt_items and drop the old table, and on SQLite, with foreign keys on, that
drop deletes every vote on it.
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.alter_column("vc_media", "kind", new_column_name="media_type")
    op.alter_column("vc_ctt_items", "kind", new_column_name="medium")


def downgrade() -> None:
    raise NotImplementedError("the results store is never downgraded: restore a copy of the database")
