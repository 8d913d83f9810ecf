"""Task numbers per user: a user's first task is task 1, whoever else has tasks.

Task ids were global, so a new user's first task could be "task 5". Each task now has a
`number` in its user's list (unique per user), and `task_counters` keeps the last one given.
Existing tasks are numbered 1..n per user in id (creation) order, and each user's counter
starts from their highest number.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# A correlated count rather than `row_number()` in an `UPDATE ... FROM`: the same statement on
# Postgres and any SQLite (UPDATE FROM needs 3.33), and it runs once, on todo-sized lists.
_NUMBER_EXISTING = """
UPDATE tasks SET number = (
    SELECT count(*) FROM tasks AS earlier
    WHERE earlier.user_id = tasks.user_id AND earlier.id <= tasks.id
)
"""

_SEED_COUNTERS = """
INSERT INTO task_counters (user_id, last_number)
SELECT user_id, max(number) FROM tasks GROUP BY user_id
"""


def upgrade() -> None:
    op.create_table(
        "task_counters",
        sa.Column("user_id", sa.String(255), primary_key=True),
        sa.Column("last_number", sa.Integer, nullable=False),
    )
    op.add_column("tasks", sa.Column("number", sa.Integer, nullable=True))
    op.execute(_NUMBER_EXISTING)
    # SQLite cannot add NOT NULL to a column in place: batch mode copies the table there.
    with op.batch_alter_table("tasks") as batch:
        batch.alter_column("number", existing_type=sa.Integer, nullable=False)
    # The unique (user_id, number) index serves every "this user's tasks" lookup.
    op.drop_index("ix_tasks_user_id", table_name="tasks")
    op.create_index("ux_tasks_user_number", "tasks", ["user_id", "number"], unique=True)
    op.execute(_SEED_COUNTERS)


def downgrade() -> None:
    op.drop_index("ux_tasks_user_number", table_name="tasks")
    op.create_index("ix_tasks_user_id", "tasks", ["user_id"])
    with op.batch_alter_table("tasks") as batch:
        batch.drop_column("number")
    op.drop_table("task_counters")
