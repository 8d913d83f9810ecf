"""Liveness and readiness probes."""

from __future__ import annotations

import logging

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response

from chatrelay.server.deps import Context
from chatrelay.server.errors import retry_after
from chatrelay.store import ping
from chatrelay.turns.metrics import CONTENT_TYPE

logger = logging.getLogger("chatrelay.server")
router = APIRouter(tags=["health"])
RETRY = retry_after(1)  # every 503 says when to look again


@router.get("/healthz", summary="The process is alive")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/readyz",
    summary="The database answers, its schema is at head and tokens can be checked "
    "(Redis, when used, is reported)",
    responses={
        503: {
            "description": "Shutting down, the database unreachable or its schema behind, "
            "or the issuer's key set never fetched"
        }
    },
)
async def readyz(context: Context) -> JSONResponse:
    if context.drain.draining:
        # SIGTERM: a balancer stops routing here, while running turns and streams finish.
        return JSONResponse({"status": "draining", "detail": "shutting down"}, 503, headers=RETRY)
    if not context.verifier.ready:
        # Every authenticated request would get 503: no key set has been fetched yet.
        return JSONResponse(
            {"status": "unavailable", "detail": "signing keys not fetched yet"}, 503, headers=RETRY
        )
    try:
        await ping(context.engine)
        behind = await context.schema.behind()  # read until seen at head, then remembered
    except Exception as exc:  # any driver error means "not ready"
        logger.warning("readiness check failed: %s", exc)
        return JSONResponse(
            {"status": "unavailable", "detail": "database unreachable"}, 503, headers=RETRY
        )
    if behind is not None:
        # A turn would run the model and then fail to save its reply (503 after the fact).
        return JSONResponse(
            {
                "status": "unavailable",
                "detail": "database schema behind",
                "revision": behind.current,
                "head": behind.head,
            },
            503,
            headers=RETRY,
        )
    cluster = context.cluster
    if cluster is not None and not await cluster.reachable():
        # Turns still run and are saved here; only following them from elsewhere waits.
        return JSONResponse({"status": "degraded", "redis": "unreachable"})
    return JSONResponse({"status": "ok"})


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
async def metrics(context: Context) -> Response:
    return Response(context.metrics.render(), media_type=CONTENT_TYPE)
