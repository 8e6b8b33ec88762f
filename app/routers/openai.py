"""/v1/embeddings and /v1/models in OpenAI's shape, so OpenAI-compatible clients work here unchanged.

Texts land in the video-text space (vt) through the same encoder call as POST /embed, so both
routes give the same vectors. `base64` is little-endian float32, as OpenAI's clients decode it.
Errors under /v1 keep the status and message app/errors.py gives them, in OpenAI's error body
(`{"error": {"message", "type", "param", "code"}}`), which OpenAI's clients read and show.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Coroutine
from typing import Any

import numpy as np
from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute

from ..bodies import DOCUMENTED_MODELS, json_model
from ..deps import EncoderDep, SettingsDep
from ..errors import ServiceError
from ..schemas import (OpenAIEmbedding, OpenAIEmbeddingRequest, OpenAIEmbeddingResponse, OpenAIErrorBody, OpenAIModel,
                       OpenAIModelList, OpenAIUsage)
from ..services.encoder import Encoder
from ..settings import Settings

__all__ = ["router", "served_models"]

DOCUMENTED_MODELS[OpenAIEmbeddingRequest.__name__] = OpenAIEmbeddingRequest  # the body is read by json_model

# OpenAI's error types by status (its clients pick exception classes by status, and show `message`)
_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
          404: "invalid_request_error", 409: "conflict_error", 413: "invalid_request_error",
          415: "invalid_request_error", 422: "invalid_request_error", 429: "rate_limit_error"}
_PARAMS = {"model_not_found": "model", "invalid_dimensions": "dimensions"}  # the field an error code is about


def _openai_shape(response: Response) -> Response:
    """The service's error body (`{"error": code, "detail": message, "errors"?}`) in OpenAI's shape."""
    if response.status_code < 400 or not isinstance(response, JSONResponse):
        return response
    body = json.loads(bytes(response.body))
    errors = body.get("errors") or []
    loc = [p for p in (errors[0].get("loc", []) if errors else []) if p != "body"]  # the request field at fault
    status = response.status_code
    error = {"message": body.get("detail", ""), "type": _TYPES.get(status, "server_error" if status >= 500 else
                                                                   "invalid_request_error"),
             "param": str(loc[0]) if loc else _PARAMS.get(body.get("error")), "code": body.get("error")}
    headers = {k: v for k, v in response.headers.items() if k.lower() not in ("content-length", "content-type")}
    return JSONResponse({"error": error}, status_code=status, headers=headers)


class _OpenAIRoute(APIRoute):
    """Runs the app's own exception handlers (one map of exceptions to statuses), then reshapes the body."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                return await handler(request)
            except Exception as exc:
                for cls in type(exc).__mro__:
                    app_handler = request.app.exception_handlers.get(cls)
                    if app_handler is not None:
                        return _openai_shape(await app_handler(request, exc))
                raise

        return route


router = APIRouter(prefix="/v1", tags=["openai"], route_class=_OpenAIRoute,
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
    openapi_extra={"requestBody": {"required": True, "content": {"application/json": {
        "schema": {"$ref": "#/components/schemas/OpenAIEmbeddingRequest"}}}}},
)
async def embeddings(request: Request, encoder: EncoderDep, settings: SettingsDep) -> OpenAIEmbeddingResponse:
    body = await json_model(request, OpenAIEmbeddingRequest, settings)
    names = served_models(encoder, settings)
    if body.model not in names:
        raise ServiceError(404, f"The model {body.model!r} does not exist on this server; it serves "
                                f"{', '.join(repr(n) for n in names)} (GET /v1/models)", code="model_not_found")
    texts = [body.input] if isinstance(body.input, str) else body.input
    if len(texts) > settings.max_texts:
        raise ServiceError(400, f"{len(texts)} texts in one request; this server takes at most {settings.max_texts}")
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
