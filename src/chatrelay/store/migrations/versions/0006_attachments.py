"""Attachments: files a user uploads for a message (the bytes live in the object store).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-08
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "attachments",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("user_id", sa.String(255), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("mime_type", sa.String(127), nullable=False),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("declared_size", sa.BigInteger, nullable=False),
        sa.Column("size", sa.BigInteger, nullable=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column(
            "message_id",
            sa.String(64),
            sa.ForeignKey("messages.id", ondelete="SET NULL"),
            nullable=True,
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("uploaded_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("kind IN ('image', 'file')", name="ck_attachments_kind"),
        sa.CheckConstraint(
            "state IN ('pending', 'uploading', 'ready')", name="ck_attachments_state"
        ),
    )
    op.create_index("ix_attachments_user_created", "attachments", ["user_id", "created_at"])
    op.create_index("ix_attachments_unsent_created", "attachments", ["message_id", "created_at"])


def downgrade() -> None:
    op.drop_table("attachments")
