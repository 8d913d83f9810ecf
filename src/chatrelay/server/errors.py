"""Errors as HTTP answers, mapped in this one place: the turn core's domain errors, the HTTP
layer's own (auth, negotiation), database faults; every answer is JSON with a `detail`."""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException

from chatrelay.attachments import LinkRefused, TooLarge, UnsupportedType
from chatrelay.logs import current_request_id
from chatrelay.schemas.text import encodable_errors
from chatrelay.turns import (
    Busy,
    Conflict,
    InvalidFields,
    LiveEventsUnavailable,
    NotFound,
    RateLimited,
    ShuttingDown,
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


@dataclass(frozen=True)
class ErrorAnswer:
    """What HTTP answers for an error, whatever carries it (a response, a WebSocket frame)."""

    status: int
    body: dict[str, Any]
    """`{"detail": ...}`, with the `correlation_id` for a 5xx."""
    headers: Mapping[str, str] = field(default_factory=dict)


DATABASE_FAULTS = (StoreUnavailable, DBAPIError, OSError, PoolTimeout)


def answer_for(exc: Exception) -> ErrorAnswer | None:
    """The answer to an expected error; None for anything else (a 500 its edge logs)."""
    if isinstance(exc, InvalidFields):  # FastAPI's own 422 shape: {"detail": [field errors]}
        return _field_errors(exc.errors)
    if isinstance(exc, RequestValidationError):
        return _field_errors(exc.errors())
    if isinstance(exc, TurnRefused):
        status, headers = _status_of(exc)
        return ErrorAnswer(status, {"detail": exc.detail}, headers)
    if isinstance(exc, HttpError):
        fault = isinstance(exc, ServerFault)
        body = _server_fault_body(exc.detail) if fault else {"detail": exc.detail}
        return ErrorAnswer(exc.status_code, body, exc.headers)
    if isinstance(exc, StarletteHTTPException):
        return ErrorAnswer(exc.status_code, {"detail": exc.detail}, exc.headers or {})
    if isinstance(exc, ShuttingDown):  # a new turn on a draining instance: retry elsewhere
        return ErrorAnswer(503, _server_fault_body(exc.detail), retry_after(1))
    if isinstance(exc, DATABASE_FAULTS):
        return _store_unavailable(exc)
    return None


def _status_of(error: TurnRefused) -> tuple[int, dict[str, str]]:
    if isinstance(error, NotFound):
        return 404, {}
    if isinstance(error, Busy):
        return 409, retry_after(error.retry_after)
    if isinstance(error, Conflict):
        return 409, {}
    if isinstance(error, RateLimited):
        return 429, retry_after(error.retry_after)
    if isinstance(error, TooLarge):
        return 413, {}
    if isinstance(error, UnsupportedType):
        return 415, {}
    if isinstance(error, LinkRefused):
        return 403, {}
    return 400, {}  # Invalid, and any refusal without a status of its own


def _field_errors(errors: Sequence[Any]) -> ErrorAnswer:
    """Made encodable: errors echo the input, and one holding a lone surrogate made the answer
    itself fail to encode (500, the lone-surrogate bug)."""
    return ErrorAnswer(422, {"detail": encodable_errors(jsonable_encoder(errors))})


def _store_unavailable(exc: Exception) -> ErrorAnswer:
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
    return ErrorAnswer(503, _server_fault_body(detail), retry_after(1))


async def _respond(_request: Request, exc: Exception) -> JSONResponse:
    answer = answer_for(exc)
    assert answer is not None, "installed only for the errors answer_for() knows"
    return JSONResponse(answer.body, status_code=answer.status, headers=dict(answer.headers))


def install_error_handlers(app: FastAPI) -> None:
    known = (RequestValidationError, TurnRefused, ShuttingDown, HttpError, StarletteHTTPException)
    for error in (*known, *DATABASE_FAULTS):
        app.add_exception_handler(error, _respond)
    # Anything else is answered (500 + correlation id) by RequestIdMiddleware.
