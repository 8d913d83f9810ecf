"""A small typed error hierarchy, mapped to JSON once (compare polar's exceptions.py)."""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException

from chatrelay.server.middleware import current_request_id

logger = logging.getLogger("chatrelay.server")


class ChatrelayError(Exception):
    """Base of every error that becomes an HTTP response."""

    status_code = 500
    headers: Mapping[str, str] = {}

    def __init__(self, detail: str, *, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        if headers is not None:
            self.headers = headers


class BadRequest(ChatrelayError):
    status_code = 400


def retry_after(seconds: float) -> dict[str, str]:
    """A `Retry-After` header: whole seconds, at least one."""
    return {"Retry-After": str(max(1, math.ceil(seconds)))}


class Unauthorized(ChatrelayError):
    status_code = 401
    headers = {"WWW-Authenticate": "Bearer"}


class Forbidden(ChatrelayError):
    status_code = 403


class NotFound(ChatrelayError):
    status_code = 404


class NotAcceptable(ChatrelayError):
    status_code = 406


class Conflict(ChatrelayError):
    status_code = 409


class ServerFault(ChatrelayError):
    """A 5xx: the body carries the correlation id that is also in the logs."""

    status_code = 500


class ServiceUnavailable(ServerFault):
    status_code = 503


def _server_fault_body(detail: str) -> dict[str, str]:
    return {"detail": detail, "correlation_id": current_request_id()}


async def _chatrelay_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ChatrelayError)
    body: dict[str, str] = (
        _server_fault_body(exc.detail) if isinstance(exc, ServerFault) else {"detail": exc.detail}
    )
    return JSONResponse(body, status_code=exc.status_code, headers=dict(exc.headers))


async def _http_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers)


async def _database_unavailable(_request: Request, exc: Exception) -> JSONResponse:
    logger.error("database error (correlation_id=%s): %s", current_request_id(), exc)
    return JSONResponse(_server_fault_body("database unavailable, please retry"), status_code=503)


async def _database_busy(_request: Request, exc: Exception) -> JSONResponse:
    logger.warning("no database connection free (correlation_id=%s): %s", current_request_id(), exc)
    return JSONResponse(
        _server_fault_body("server busy, please retry"), status_code=503, headers=retry_after(1)
    )


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ChatrelayError, _chatrelay_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    # A refused connection surfaces as OSError from the driver, a lost one as a DBAPIError.
    app.add_exception_handler(DBAPIError, _database_unavailable)
    app.add_exception_handler(OSError, _database_unavailable)
    # Every pooled connection stayed in use for the pool's timeout: overload, not a fault.
    app.add_exception_handler(PoolTimeout, _database_busy)
    # Anything else is answered (500 + correlation id) by RequestIdMiddleware.
    # FastAPI's own 422 handler already answers {"detail": [field errors]}.
