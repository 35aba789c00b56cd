"""key limits: query budgets, output policies, per-key and per-project limits, key usage

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.add_column(sa.Column("predict_budget", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("output_policy", sa.String(length=63), nullable=True))
        batch_op.add_column(sa.Column("limits", sa.JSON(), nullable=True))
    with op.batch_alter_table("projects", schema=None) as batch_op:
        batch_op.add_column(sa.Column("limits", sa.JSON(), nullable=True))
    op.create_table(
        "key_usage",
        sa.Column("key_id", sa.String(length=32), nullable=False),
        sa.Column("day", sa.String(length=10), nullable=False),
        sa.Column("inputs", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["key_id"],
            ["api_keys.id"],
            name=op.f("fk_key_usage_key_id_api_keys"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("key_id", "day", name=op.f("pk_key_usage")),
    )


def downgrade() -> None:
    op.drop_table("key_usage")
    with op.batch_alter_table("projects", schema=None) as batch_op:
        batch_op.drop_column("limits")
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.drop_column("limits")
        batch_op.drop_column("output_policy")
        batch_op.drop_column("predict_budget")
