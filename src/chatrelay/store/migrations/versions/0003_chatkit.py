"""ChatKit: the user's input parts on messages, and feedback on items.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("messages") as batch:
        batch.add_column(sa.Column("parts", sa.JSON, nullable=True))
    op.create_index("ix_conversations_user_created", "conversations", ["user_id", "created_at"])
    op.create_table(
        "feedback",
        sa.Column("conversation_id", sa.String(64), nullable=False),
        sa.Column("item_id", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("conversation_id", "item_id"),
        sa.ForeignKeyConstraint(["conversation_id"], ["conversations.id"], ondelete="CASCADE"),
        sa.CheckConstraint("kind IN ('positive', 'negative')", name="ck_feedback_kind"),
    )


def downgrade() -> None:
    op.drop_table("feedback")
    op.drop_index("ix_conversations_user_created", table_name="conversations")
    with op.batch_alter_table("messages") as batch:
        batch.drop_column("parts")
