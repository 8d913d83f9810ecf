"""Errors as HTTP answers, mapped in this one place: the turn core's domain errors, the HTTP
layer's own (auth, negotiation), database faults; every answer is JSON with a `detail`."""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException

from chatrelay.logs import current_request_id
from chatrelay.schemas.text import encodable_errors
from chatrelay.turns import (
    Busy,
    Conflict,
    InvalidFields,
    LiveEventsUnavailable,
    NotFound,
    RateLimited,
    StoreUnavailable,
    TurnRefused,
)

logger = logging.getLogger("chatrelay.server")


def retry_after(seconds: float) -> dict[str, str]:
    """A `Retry-After` header: whole seconds, at least one."""
    return {"Retry-After": str(max(1, math.ceil(seconds)))}


class HttpError(Exception):
    """An error of the HTTP layer itself, with its status."""

    status_code = 500
    headers: Mapping[str, str] = {}

    def __init__(self, detail: str, *, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        if headers is not None:
            self.headers = headers


class Unauthorized(HttpError):
    status_code = 401
    headers = {"WWW-Authenticate": "Bearer"}


class InvalidToken(Unauthorized):
    """A bearer token was presented and is bad (RFC 6750 `invalid_token`), not merely absent."""


class Forbidden(HttpError):
    status_code = 403


class NotAcceptable(HttpError):
    status_code = 406


class UnsupportedMediaType(HttpError):
    status_code = 415


class ServerFault(HttpError):
    """A 5xx: the body carries the correlation id that is also in the logs."""

    status_code = 500


class ServiceUnavailable(ServerFault):
    """A 503: always with `Retry-After` (the model, the database or the server is back soon)."""

    status_code = 503
    headers = retry_after(1)


def _server_fault_body(detail: str) -> dict[str, str]:
    return {"detail": detail, "correlation_id": current_request_id()}


def _status_of(error: TurnRefused) -> tuple[int, dict[str, str]]:
    if isinstance(error, NotFound):
        return 404, {}
    if isinstance(error, Busy):
        return 409, retry_after(error.retry_after)
    if isinstance(error, Conflict):
        return 409, {}
    if isinstance(error, RateLimited):
        return 429, retry_after(error.retry_after)
    return 400, {}  # Invalid, and any refusal without a status of its own


async def _refused(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, TurnRefused)
    if isinstance(exc, InvalidFields):  # FastAPI's own 422 shape: {"detail": [field errors]}
        return _field_errors(exc.errors)
    status, headers = _status_of(exc)
    return JSONResponse({"detail": exc.detail}, status_code=status, headers=headers)


async def _invalid_request(_request: Request, exc: Exception) -> JSONResponse:
    """FastAPI's own 422, made encodable: its errors echo the input, and one holding a lone
    surrogate made the answer itself fail to encode (500, the lone-surrogate bug)."""
    assert isinstance(exc, RequestValidationError)
    return _field_errors(exc.errors())


def _field_errors(errors: Sequence[Any]) -> JSONResponse:
    return JSONResponse({"detail": encodable_errors(jsonable_encoder(errors))}, status_code=422)


async def _http_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HttpError)
    body = (
        _server_fault_body(exc.detail) if isinstance(exc, ServerFault) else {"detail": exc.detail}
    )
    return JSONResponse(body, status_code=exc.status_code, headers=dict(exc.headers))


async def _starlette_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers)


async def _store_unavailable(_request: Request, exc: Exception) -> JSONResponse:
    busy = isinstance(exc, PoolTimeout) or (isinstance(exc, StoreUnavailable) and exc.busy)
    if busy:  # every pooled connection stayed in use for the pool's timeout: overload
        logger.warning(
            "no database connection free (correlation_id=%s): %s", current_request_id(), exc
        )
        detail = "server busy, please retry"
    elif isinstance(exc, LiveEventsUnavailable):  # Redis: nothing stored is at risk
        logger.warning("live events unavailable (correlation_id=%s): %s", current_request_id(), exc)
        detail = str(exc)
    else:  # a refused connection surfaces as OSError from the driver, a lost one as DBAPIError
        logger.error("database error (correlation_id=%s): %s", current_request_id(), exc)
        detail = "database unavailable, please retry"
    return JSONResponse(_server_fault_body(detail), status_code=503, headers=retry_after(1))


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _invalid_request)
    app.add_exception_handler(TurnRefused, _refused)
    app.add_exception_handler(HttpError, _http_error)
    app.add_exception_handler(StarletteHTTPException, _starlette_error)
    for database_fault in (StoreUnavailable, DBAPIError, OSError, PoolTimeout):
        app.add_exception_handler(database_fault, _store_unavailable)
    # Anything else is answered (500 + correlation id) by RequestIdMiddleware.
