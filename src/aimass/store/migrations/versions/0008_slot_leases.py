"""slot leases: calls in flight per key, shared by the servers on one database

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "slot_leases",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("slot", sa.String(length=255), nullable=False),
        sa.Column("holder", sa.String(length=64), nullable=False),
        sa.Column("expires_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_slot_leases")),
    )
    with op.batch_alter_table("slot_leases", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_slot_leases_expires_at"), ["expires_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_slot_leases_holder"), ["holder"], unique=False)
        batch_op.create_index(batch_op.f("ix_slot_leases_slot"), ["slot"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("slot_leases", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_slot_leases_slot"))
        batch_op.drop_index(batch_op.f("ix_slot_leases_holder"))
        batch_op.drop_index(batch_op.f("ix_slot_leases_expires_at"))
    op.drop_table("slot_leases")
