"""/v1/embeddings and /v1/models in OpenAI's shape, so OpenAI-compatible clients work here unchanged.

Texts land in the video-text space (vt) through the same encoder call as POST /embed, so both
routes give the same vectors. `base64` is little-endian float32, as OpenAI's clients decode it.
Errors under /v1 keep the status and message app/errors.py gives them, in OpenAI's error body
(`{"error": {"message", "type", "param", "code"}}`), which OpenAI's clients read and show.
"""

from __future__ import annotations

import base64
import json

import numpy as np
from fastapi import APIRouter, Request
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..bodies import json_body, json_model
from ..deps import EncoderDep, SettingsDep
from ..errors import ServiceError
from ..limits import check_count
from ..schemas import (OpenAIEmbedding, OpenAIEmbeddingRequest, OpenAIEmbeddingResponse, OpenAIErrorBody, OpenAIModel,
                       OpenAIModelList, OpenAIUsage)
from ..services.encoder import Encoder
from ..settings import Settings

__all__ = ["router", "served_models", "OpenAIErrors"]

PREFIX = "/v1"

# OpenAI's error types by status (its clients pick exception classes by status, and show `message`)
_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
          404: "invalid_request_error", 409: "conflict_error", 413: "invalid_request_error",
          415: "invalid_request_error", 422: "invalid_request_error", 429: "rate_limit_error"}
_PARAMS = {"model_not_found": "model", "invalid_dimensions": "dimensions"}  # the field an error code is about


def _openai_body(status: int, raw: bytes) -> bytes:
    """The service's error body (`{"error": code, "detail": message, "errors"?}`) in OpenAI's shape."""
    try:
        body = json.loads(raw)
    except ValueError:
        body = {"detail": raw.decode("utf-8", "replace")[:500]}
    if not isinstance(body, dict) or isinstance(body.get("error"), dict):  # not ours, or already OpenAI's
        return raw
    errors = body.get("errors") or []
    loc = [p for p in (errors[0].get("loc", []) if errors else []) if p != "body"]  # the request field at fault
    error = {"message": body.get("detail") or f"request failed with status {status}",
             "type": _TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error"),
             "param": str(loc[0]) if loc else _PARAMS.get(body.get("error")), "code": body.get("error")}
    return json.dumps({"error": error}).encode()


class OpenAIErrors:
    """ASGI middleware: every error answered under /v1/ (routes, 404/405 of the router, limits, 500s)
    keeps the status and message app/errors.py gave it, in OpenAI's body."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(PREFIX + "/"):
            await self.app(scope, receive, send)
            return
        start: Message | None = None
        started = False
        chunks: list[bytes] = []

        async def reshape(message: Message) -> None:
            nonlocal start, started
            if message["type"] == "http.response.start":
                started = True
            if message["type"] == "http.response.start" and message["status"] >= 400:
                start = message  # held until the body is complete
            elif message["type"] == "http.response.body" and start is not None:
                chunks.append(message.get("body", b""))
                if not message.get("more_body"):
                    body = _openai_body(start["status"], b"".join(chunks))
                    headers = MutableHeaders(raw=list(start["headers"]))
                    headers["content-length"] = str(len(body))
                    headers["content-type"] = "application/json"
                    await send({**start, "headers": headers.raw})
                    await send({"type": "http.response.body", "body": body})
            else:
                await send(message)

        try:
            await self.app(scope, receive, reshape)
        except Exception as exc:  # unhandled: the app's own 500 (logged, with the request id), reshaped
            if started:
                raise
            handler = scope["app"].exception_handlers.get(Exception)
            if handler is None:
                raise
            await (await handler(Request(scope), exc))(scope, receive, reshape)


router = APIRouter(prefix=PREFIX, tags=["openai"],
                   responses={c: {"model": OpenAIErrorBody} for c in (400, 401, 403, 404, 413, 415, 422)})


def served_models(encoder: Encoder, settings: Settings) -> list[str]:
    """The names `model` may take: the model directory's name, the model's config name, and "vatt"."""
    return list(dict.fromkeys([settings.model_dir.name, encoder.model.config.name, "vatt"]))


def _encode(vector: np.ndarray, encoding: str) -> list[float] | str:
    if encoding == "base64":
        return base64.b64encode(np.asarray(vector, "<f4").tobytes()).decode("ascii")
    return vector.tolist()


@router.get("/models", response_model=OpenAIModelList, summary="The served model, OpenAI-compatible")
async def models(encoder: EncoderDep, settings: SettingsDep) -> OpenAIModelList:
    try:
        created = int((settings.model_dir / "config.json").stat().st_mtime)
    except OSError:
        created = 0
    return OpenAIModelList(data=[OpenAIModel(id=name, created=created) for name in served_models(encoder, settings)])


@router.post(
    "/embeddings", response_model=OpenAIEmbeddingResponse, summary="Embed texts (vt), OpenAI-compatible",
    openapi_extra=json_body(OpenAIEmbeddingRequest),
)
async def embeddings(request: Request, encoder: EncoderDep, settings: SettingsDep) -> OpenAIEmbeddingResponse:
    body = await json_model(request, OpenAIEmbeddingRequest, settings)
    names = served_models(encoder, settings)
    if body.model not in names:
        raise ServiceError(404, f"The model {body.model!r} does not exist on this server; it serves "
                                f"{', '.join(repr(n) for n in names)} (GET /v1/models)", code="model_not_found")
    texts = [body.input] if isinstance(body.input, str) else body.input
    check_count(texts, settings.max_texts, "texts")
    dim = encoder.dims["vt"]
    if body.dimensions is not None and body.dimensions != dim:
        raise ServiceError(400, f"dimensions={body.dimensions}: this model's text vectors (vt) have {dim} "
                                f"dimensions and cannot be shortened (VATT's spaces are not Matryoshka "
                                f"embeddings); omit 'dimensions' or send {dim}", code="invalid_dimensions")
    vt = await encoder.aembed_texts(texts)
    tokens = int((encoder.tokenize(texts) != 0).sum())  # what the model saw: ids after truncation, no padding
    return OpenAIEmbeddingResponse(
        data=[OpenAIEmbedding(index=i, embedding=_encode(v, body.encoding_format)) for i, v in enumerate(vt)],
        model=body.model,
        usage=OpenAIUsage(prompt_tokens=tokens, total_tokens=tokens),
    )
