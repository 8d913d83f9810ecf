"""Fixtures of the turn core's tests: services on the fakes, shut down after each test."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from chatrelay.turns import TurnService
from tests.fakes.turns import InMemoryTurnStore, ScriptedModel
from tests.unit.turns.helpers import SETTLE_SECONDS, ServiceFactory, build_service


@pytest.fixture
def store() -> InMemoryTurnStore:
    return InMemoryTurnStore()


@pytest.fixture
async def make_service(store: InMemoryTurnStore) -> AsyncIterator[ServiceFactory]:
    """`make_service(model, **options)`: a service on the test's `store`
    (`build_service`'s options). Whatever still runs at the end is shut down, and no turn
    may be left behind by that."""
    services: list[TurnService] = []

    def make(model: ScriptedModel, **options: Any) -> TurnService:
        service = build_service(model, store, **options)
        services.append(service)
        return service

    yield make
    store.release_all()
    for service in services:
        await asyncio.wait_for(service.registry.shutdown(grace_seconds=0), SETTLE_SECONDS)
        assert service.registry.running == 0
