"""Every failed request answered in one place, in one shape: ``{"error": "..."}`` with its status and headers (FastAPI's
validation errors and HTTP exceptions too); a client gone mid-request is one log line, not a traceback."""

from __future__ import annotations

import asyncio
import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect

from mobilenetv2.data.images import BadImageError
from mobilenetv2.serving.batcher import QueueFull

FAILURE_KIND = "mobilenetv2.failure_kind"  # where the handler leaves the failure's kind (in the ASGI scope) for the metrics


class ApiError(Exception):
    """A request the server refuses: the HTTP status, the message, the headers and the kind the metrics count it as."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None, kind: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.headers, self.kind = status, message, headers or {}, kind or str(status)


FAILURES = (ApiError, BadImageError, QueueFull, asyncio.TimeoutError, RequestValidationError, HTTPException,
            ClientDisconnect)
log = logging.getLogger("mobilenetv2.serve")


def as_api_error(exc: Exception, timeout_s: float) -> ApiError:
    """The answer to one of ``FAILURES``: an unreadable image 400, a full queue 503 with Retry-After, no answer within
    the timeout 504; an ``ApiError`` is its own answer."""
    if isinstance(exc, BadImageError):
        return ApiError(400, str(exc), kind="bad_image")
    if isinstance(exc, QueueFull):
        return ApiError(503, "the server is busy (queue full); retry shortly", {"Retry-After": "1"})
    if isinstance(exc, asyncio.TimeoutError):
        return ApiError(504, f"no answer within {timeout_s:g} s")
    if isinstance(exc, RequestValidationError):
        return ApiError(422, "; ".join(validation_message(e) for e in exc.errors()), kind="bad_request")
    if isinstance(exc, HTTPException):
        return ApiError(exc.status_code, str(exc.detail), dict(exc.headers or {}))
    if isinstance(exc, ClientDisconnect):
        return ApiError(499, "the client disconnected", kind="disconnected")
    return exc


def validation_message(error: dict) -> str:
    """``top_k: Input should be a valid integer, unable to parse string as an integer (got 'abc')``."""
    where = ".".join(str(part) for part in error.get("loc", ())[1:]) or "request"
    given = f" (got {error['input']!r})" if isinstance(error.get("input"), (str, int, float)) else ""
    return f"{where}: {error.get('msg', 'invalid')}{given}"


async def answer_failure(request: Request, exc: Exception) -> JSONResponse:
    error = as_api_error(exc, request.app.state.serving.options.timeout_s)
    request.scope[FAILURE_KIND] = error.kind
    if isinstance(exc, ClientDisconnect):
        client = request.client
        log.info("%s %s: the client%s disconnected before sending its whole request", request.method, request.url.path,
                 f" {client.host}:{client.port}" if client else "")
    return JSONResponse({"error": error.message}, status_code=error.status, headers=error.headers)


def install_error_handler(app: FastAPI) -> None:
    for failure in FAILURES:
        app.add_exception_handler(failure, answer_failure)
