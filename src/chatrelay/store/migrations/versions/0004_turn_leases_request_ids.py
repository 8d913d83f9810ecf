"""One turn per conversation (leases), and exactly-once request ids.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "turn_leases",
        sa.Column("conversation_id", sa.String(64), primary_key=True),
        sa.Column("holder", sa.String(64), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    )
    # A client's request id names one turn of a conversation: a repeat can't write a 2nd pair.
    op.create_index(
        "ux_messages_conversation_request",
        "messages",
        ["conversation_id", "request_id"],
        unique=True,
        sqlite_where=sa.text("role = 'user' AND request_id IS NOT NULL"),
        postgresql_where=sa.text("role = 'user' AND request_id IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("ux_messages_conversation_request", table_name="messages")
    op.drop_table("turn_leases")
