"""added vc_ctt_sessions.shown_at (the display clock is the server's)

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02

When the current item was first shown, so reloading the page does not show it for a second display
time. Until this revision, opening a database with campaign tables did not add the column: such
databases are upgraded now.
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("vc_ctt_sessions", sa.Column("shown_at", sa.DateTime(), nullable=True))


def downgrade() -> None:
    raise NotImplementedError("the results store is never downgraded: restore a copy of the database")
