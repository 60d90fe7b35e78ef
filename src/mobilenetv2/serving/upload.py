"""The image a prediction request uploads: the raw body or the multipart field ``file``, refused above 20 MB or when
its content type says it is something else (JSON, text); ``prepare_upload`` turns it into the model's inputs on a
decoding thread (JPEG draft mode, as ``predict`` decodes)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi import Request

from mobilenetv2.inference.stream.decode import model_inputs, read_picture
from mobilenetv2.serving.errors import ApiError

if TYPE_CHECKING:
    import numpy as np

    from mobilenetv2.inference.predictor import Predictor

MAX_BODY_BYTES = 20 * 1024 * 1024  # an upload above 20 MB is refused (413) before it is read whole
FILE_FIELD = "file"
# what an upload may say it is: an image, bytes, a form (multipart; curl --data-binary's default), or nothing
CONTENT_TYPES = ("image/*", "application/octet-stream", "multipart/form-data", "application/x-www-form-urlencoded")


def check_content_type(value: str | None) -> None:
    """415 for a body that says it is not an image (``application/json``, ``text/plain``, ...)."""
    kind = (value or "").split(";")[0].strip().lower()
    if kind and not (kind.startswith("image/") or kind in CONTENT_TYPES):
        raise ApiError(415, f"unsupported content type {kind!r}; send the image as {', '.join(CONTENT_TYPES)}",
                       kind="content_type")


async def read_upload(request: Request) -> bytes:
    """The image bytes: the multipart field ``file``, or the raw body; refused above ``MAX_BODY_BYTES``."""
    check_content_type(request.headers.get("content-type"))
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise ApiError(413, f"the body is {int(declared):,} bytes, above the limit of {MAX_BODY_BYTES:,} bytes")
    chunks, size = [], 0  # kept as they come (a growing bytearray over-allocates): an upload costs its own size
    async for chunk in request.stream():
        chunks.append(chunk)
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise ApiError(413, f"the body is above the limit of {MAX_BODY_BYTES:,} bytes")
    body = b"".join(chunks)
    if request.headers.get("content-type", "").startswith("multipart/form-data"):
        return await multipart_file(request, body)
    if not body:
        raise ApiError(400, "empty body: send the image as the body, or as the multipart field 'file'")
    return body


async def multipart_file(request: Request, body: bytes) -> bytes:
    from starlette.datastructures import UploadFile
    from starlette.requests import Request as Replay

    async def receive() -> dict:
        return {"type": "http.request", "body": body, "more_body": False}

    form = await Replay(request.scope, receive).form()
    upload = form.get(FILE_FIELD)
    if not isinstance(upload, UploadFile):
        fields = ", ".join(repr(k) for k in form) or "none"
        raise ApiError(422, f"multipart upload without a file field named {FILE_FIELD!r} (fields: {fields})")
    return await upload.read()


def prepare_upload(predictor: Predictor, body: bytes) -> tuple[np.ndarray, Any]:
    """The uploaded image -> (its normalised model inputs, what ``finish`` needs): decoded in draft mode at the smallest
    scale that covers the model's resize, then resized and normalised, all off the event loop."""
    picture, full = read_picture(body, "the upload", predictor.decode_size)
    return model_inputs(predictor, picture, full)
