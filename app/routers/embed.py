"""POST /embed: vectors for texts (JSON) or for every segment of an uploaded file (multipart)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool

from model import MODALITY_SPACES, whole_item_vector

from ..bodies import error_responses, form_model, json_model, named_upload, request_body
from ..deps import EncodeFileOrJson, EncoderDep, SettingsDep
from ..errors import ServiceError
from ..limits import check_count
from ..schemas import EmbedFileResponse, EmbedForm, EmbedTextRequest, EmbedTextResponse, SegmentEmbedding, TextEmbedding

router = APIRouter(tags=["embed"])

@router.post(
    "/embed", response_model=EmbedFileResponse | EmbedTextResponse, response_model_exclude_none=True,
    summary="Embed texts (vt) or every segment of a video (va, vt) / audio (va) file",
    responses=error_responses(400, 401, 403, 413, 415, 422, 429, 507),
    openapi_extra=request_body(EmbedTextRequest, {
        "spaces": {"type": "string", "description": "comma-separated subset of va,vt (default: all the file has)"}},
        required=["file"], description="JSON {\"texts\": [...]} or a multipart upload in field 'file'"),
)
async def embed(request: Request, encoder: EncoderDep, settings: SettingsDep,
                upload: EncodeFileOrJson) -> EmbedFileResponse | EmbedTextResponse:
    form = upload.form
    if form is None:
        body = await json_model(request, EmbedTextRequest, settings)
        check_count(body.texts, settings.max_texts, "texts")
        vt = await encoder.aembed_texts(body.texts)
        return EmbedTextResponse(embeddings=[TextEmbedding(vt=v.tolist()) for v in vt], dim=vt.shape[1])
    opts = form_model(EmbedForm, form, lists=("spaces",))
    with named_upload(form.file):
        emb = await run_in_threadpool(lambda: encoder.embed_file(form.file.path, cancel=upload.cancelled))
    have = MODALITY_SPACES[emb.kind]
    spaces = opts.spaces or list(have)
    missing = [s for s in spaces if s not in have]
    if missing:
        raise ServiceError(400, f"a {emb.kind} file has no {', '.join(missing)} vectors; it has {', '.join(have)}")
    segments = [SegmentEmbedding(start=s, end=e, **{sp: emb.vectors[sp][i].tolist() for sp in spaces})
                for i, (s, e) in enumerate(zip(emb.starts, emb.ends))]
    return EmbedFileResponse(kind=emb.kind, duration=emb.info.duration, segments=segments,
                             mean={sp: whole_item_vector(emb.vectors[sp]).tolist() for sp in spaces})
