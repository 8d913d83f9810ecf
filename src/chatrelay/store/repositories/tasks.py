"""A user's tasks. Every statement filters on the owner: another user's task id is not found."""

from __future__ import annotations

from typing import Literal

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from chatrelay.store.tables import Task, utcnow

TaskStatus = Literal["all", "pending", "completed"]


class TaskRepository:
    def __init__(self, db: AsyncSession, user_id: str) -> None:
        self._db = db
        self._user_id = user_id

    async def add(self, title: str, description: str | None) -> Task:
        now = utcnow()
        task = Task(
            user_id=self._user_id,
            title=title,
            description=description,
            created_at=now,
            updated_at=now,
        )
        self._db.add(task)
        await self._db.flush()
        return task

    async def by_status(self, status: TaskStatus = "all") -> list[Task]:
        statement = select(Task).where(col(Task.user_id) == self._user_id).order_by(col(Task.id))
        if status != "all":
            statement = statement.where(col(Task.completed) == (status == "completed"))
        return list((await self._db.exec(statement)).all())

    async def get(self, task_id: int) -> Task | None:
        statement = select(Task).where(col(Task.id) == task_id, col(Task.user_id) == self._user_id)
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
