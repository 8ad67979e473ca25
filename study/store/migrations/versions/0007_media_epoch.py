"""added vc_media.epoch (sample frames rendered during training, by epoch)

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-08

A trial's sample frames may be rendered every k-th epoch while it trains (a study's
`media_every`); each such file records its epoch. The files rendered once at the end (the best
checkpoint's frames and clips) keep NULL, as every older row does.
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("vc_media", sa.Column("epoch", sa.Integer(), nullable=True))


def downgrade() -> None:
    raise NotImplementedError("the results store is never downgraded: restore a copy of the database")
