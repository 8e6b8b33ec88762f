"""POST /v1/embeddings in OpenAI's shape, so OpenAI-compatible clients embed texts here unchanged.

Texts land in the video-text space (vt) through the same encoder call as POST /embed, so both
routes give the same vectors. `base64` is little-endian float32, as OpenAI's clients decode it.
"""

from __future__ import annotations

import base64

import numpy as np
from fastapi import APIRouter, Request

from ..bodies import error_responses, json_body, json_model
from ..deps import EncoderDep, SettingsDep
from ..errors import ServiceError
from ..limits import check_count
from ..schemas import OpenAIEmbedding, OpenAIEmbeddingRequest, OpenAIEmbeddingResponse, OpenAIUsage

router = APIRouter(tags=["openai"])


def _encode(vector: np.ndarray, encoding: str) -> list[float] | str:
    if encoding == "base64":
        return base64.b64encode(np.asarray(vector, "<f4").tobytes()).decode("ascii")
    return vector.tolist()


@router.post(
    "/v1/embeddings", response_model=OpenAIEmbeddingResponse, summary="Embed texts (vt), OpenAI-compatible",
    responses=error_responses(400, 413, 415, 422),
    openapi_extra=json_body(OpenAIEmbeddingRequest),
)
async def embeddings(request: Request, encoder: EncoderDep, settings: SettingsDep) -> OpenAIEmbeddingResponse:
    body = await json_model(request, OpenAIEmbeddingRequest, settings)
    texts = [body.input] if isinstance(body.input, str) else body.input
    check_count(texts, settings.max_texts, "texts")
    dim = encoder.dims["vt"]
    if body.dimensions is not None and body.dimensions != dim:
        raise ServiceError(400, f"dimensions={body.dimensions}: this model's text vectors (vt) have {dim} "
                                f"dimensions and are not shortened; omit 'dimensions' or send {dim}")
    vt = await encoder.aembed_texts(texts)
    tokens = int((encoder.tokenize(texts) != 0).sum())  # what the model saw: ids after truncation, no padding
    return OpenAIEmbeddingResponse(
        data=[OpenAIEmbedding(index=i, embedding=_encode(v, body.encoding_format)) for i, v in enumerate(vt)],
        model=body.model,
        usage=OpenAIUsage(prompt_tokens=tokens, total_tokens=tokens),
    )
