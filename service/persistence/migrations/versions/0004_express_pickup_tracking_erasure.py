"""Express capacity and storage slots per branch, pickup codes and slots, tracking links, customer erasure.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25 16:22:13.830371
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_SLOT_HELD = sa.text("pickup_slot IS NOT NULL")


def upgrade() -> None:
    with op.batch_alter_table("branch", schema=None) as batch_op:
        batch_op.add_column(sa.Column("express_capacity", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("storage_slots", sa.JSON(), nullable=True))

    with op.batch_alter_table("customer", schema=None) as batch_op:
        batch_op.add_column(sa.Column("erased_at", sa.DateTime(timezone=True), nullable=True))

    with op.batch_alter_table("repair_job", schema=None) as batch_op:
        batch_op.add_column(sa.Column("tracking_hash", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True))
        batch_op.add_column(sa.Column("tracking_ciphertext", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("tracking_issued_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("pickup_code_hash", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True))
        batch_op.add_column(sa.Column("pickup_slot", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=True))
        batch_op.add_column(sa.Column("pickup_failures", sa.Integer(), server_default="0", nullable=False))
        batch_op.add_column(sa.Column("pickup_locked_until", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("collected_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("paid_cents", sa.BigInteger(), nullable=True))
        batch_op.create_index(
            "uq_repair_job_branch_slot",
            ["branch_id", "pickup_slot"],
            unique=True,
            sqlite_where=_SLOT_HELD,
            postgresql_where=_SLOT_HELD,
        )
        batch_op.create_index("uq_repair_job_tracking_hash", ["tracking_hash"], unique=True)


def downgrade() -> None:
    with op.batch_alter_table("repair_job", schema=None) as batch_op:
        batch_op.drop_index("uq_repair_job_tracking_hash")
        batch_op.drop_index("uq_repair_job_branch_slot", sqlite_where=_SLOT_HELD, postgresql_where=_SLOT_HELD)
        for column in (
            "paid_cents",
            "collected_at",
            "pickup_locked_until",
            "pickup_failures",
            "pickup_slot",
            "pickup_code_hash",
            "tracking_issued_at",
            "tracking_ciphertext",
            "tracking_hash",
        ):
            batch_op.drop_column(column)

    with op.batch_alter_table("customer", schema=None) as batch_op:
        batch_op.drop_column("erased_at")

    with op.batch_alter_table("branch", schema=None) as batch_op:
        batch_op.drop_column("storage_slots")
        batch_op.drop_column("express_capacity")
