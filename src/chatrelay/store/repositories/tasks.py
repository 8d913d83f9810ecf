"""A user's tasks, named by their number in the user's list (1, 2, ...). Every statement
filters on the owner: another user's task number is not found, like one never given."""

from __future__ import annotations

from typing import Literal

from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from chatrelay.store.tables import Task, TaskCounter, utcnow

TaskStatus = Literal["all", "pending", "completed"]


class TaskRepository:
    def __init__(self, db: AsyncSession, user_id: str) -> None:
        self._db = db
        self._user_id = user_id

    async def _next_number(self) -> int:
        """Bump the user's counter and return it, in one statement.

        The upsert locks the user's counter row until this transaction ends, so the user's
        concurrent adds (on any connection or instance) take numbers one after another and
        never the same one; the first add's insert is raced safely too, since Postgres makes
        a conflicting insert wait for the first to commit, then update (SQLite has one
        writer at a time anyway). A `max(number) + 1` would hand two of them the same
        number. The counter never goes down: a deleted task's number is not given again, so
        "task 3" never names two different tasks in one conversation.
        """
        dialect = self._db.get_bind().dialect.name
        insert = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(TaskCounter)
        statement = (
            insert.values(user_id=self._user_id, last_number=1)
            .on_conflict_do_update(
                index_elements=["user_id"],
                set_={"last_number": col(TaskCounter.last_number) + 1},
            )
            .returning(col(TaskCounter.last_number))
        )
        number: int = (await self._db.exec(statement)).scalar_one()
        return number

    async def add(self, title: str, description: str | None) -> Task:
        number = await self._next_number()
        now = utcnow()
        task = Task(
            user_id=self._user_id,
            number=number,
            title=title,
            description=description,
            created_at=now,
            updated_at=now,
        )
        self._db.add(task)
        await self._db.flush()
        return task

    async def by_status(self, status: TaskStatus = "all") -> list[Task]:
        statement = (
            select(Task).where(col(Task.user_id) == self._user_id).order_by(col(Task.number))
        )
        if status != "all":
            statement = statement.where(col(Task.completed) == (status == "completed"))
        return list((await self._db.exec(statement)).all())

    async def get(self, number: int) -> Task | None:
        statement = select(Task).where(
            col(Task.user_id) == self._user_id, col(Task.number) == number
        )
        return (await self._db.exec(statement)).first()

    async def update(
        self,
        task: Task,
        *,
        title: str | None = None,
        description: str | None = None,
        completed: bool | None = None,
    ) -> Task:
        if title is not None:
            task.title = title
        if description is not None:
            task.description = description
        if completed is not None:
            task.completed = completed
        task.updated_at = utcnow()
        self._db.add(task)
        await self._db.flush()
        return task

    async def delete(self, task: Task) -> None:
        await self._db.delete(task)
        await self._db.flush()
