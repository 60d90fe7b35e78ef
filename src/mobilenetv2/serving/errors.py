"""Every failed request answered in one place: ``{"error": "..."}`` with its status and headers."""

from __future__ import annotations

import asyncio

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from mobilenetv2.data.images import BadImageError
from mobilenetv2.serving.batcher import QueueFull

FAILURE_KIND = "mobilenetv2.failure_kind"  # where the handler leaves the failure's kind (in the ASGI scope) for the metrics


class ApiError(Exception):
    """A request the server refuses: the HTTP status, the message, the headers and the kind the metrics count it as."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None, kind: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.headers, self.kind = status, message, headers or {}, kind or str(status)


FAILURES = (ApiError, BadImageError, QueueFull, asyncio.TimeoutError)


def as_api_error(exc: Exception, timeout_s: float) -> ApiError:
    """The answer to one of ``FAILURES``: an unreadable image 400, a full queue 503 with Retry-After, no answer within
    the timeout 504; an ``ApiError`` is its own answer."""
    if isinstance(exc, BadImageError):
        return ApiError(400, str(exc), kind="bad_image")
    if isinstance(exc, QueueFull):
        return ApiError(503, "the server is busy (queue full); retry shortly", {"Retry-After": "1"})
    if isinstance(exc, asyncio.TimeoutError):
        return ApiError(504, f"no answer within {timeout_s:g} s")
    return exc


async def answer_failure(request: Request, exc: Exception) -> JSONResponse:
    error = as_api_error(exc, request.app.state.serving.options.timeout_s)
    request.scope[FAILURE_KIND] = error.kind
    return JSONResponse({"error": error.message}, status_code=error.status, headers=error.headers)


def install_error_handler(app: FastAPI) -> None:
    for failure in FAILURES:
        app.add_exception_handler(failure, answer_failure)
