"""POST /classify: zero-shot labels for a file or an item, per item and per segment."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool

from ..bodies import error_responses, form_model, json_model, named_upload, request_body
from ..deps import EncodeFileOrJson, QueryDep, SettingsDep, SupervisedDep
from ..errors import ServiceError
from ..limits import check_count
from ..schemas import ClassifyForm, ClassifyRequest, ClassifyResponse, SegmentProbabilities, SupervisedScores
from ..services.query import check_template
from ..services.supervised import SupervisedClassifier

router = APIRouter(tags=["classify"])

_FORM = {
    "labels": {"type": "array", "items": {"type": "string"}, "minItems": 1,
               "description": "repeat the field per label, or send one JSON array"},
    "template": {"type": "string", "description": "prompt with '{}' for the label (default 'a video of {}')"},
}


@router.post(
    "/classify", response_model=ClassifyResponse, summary="Zero-shot classification in the video-text space",
    description="probabilities = softmax(cosine(video, prompt) / temperature) over the labels, temperature "
                "0.07 (VATT's NCE temperature; setting `temperature`). Item-level probabilities use the "
                "normalised mean of the segment vectors. Audio has no vt vector: 400.",
    responses=error_responses(400, 401, 403, 404, 413, 415, 422, 429, 507),
    openapi_extra=request_body(ClassifyRequest, _FORM, required=["file", "labels"],
                               description="JSON {item_id, labels, template} or a multipart 'file' with "
                                           "'labels' and 'template' fields"),
)
async def classify(request: Request, query: QueryDep, settings: SettingsDep, supervised_model: SupervisedDep,
                   upload: EncodeFileOrJson) -> ClassifyResponse:
    form = upload.form
    if form is None:
        req = await json_model(request, ClassifyRequest, settings)
        _check_labels(req, settings.max_labels)
        q = await run_in_threadpool(query.from_item, req.item_id)
        opts: ClassifyForm = req
        supervised = None
    else:
        opts = form_model(ClassifyForm, form, keep_commas=("labels",))
        _check_labels(opts, settings.max_labels)
        with named_upload(form.file):
            q = await run_in_threadpool(lambda: query.from_file(form.file.path, cancel=upload.cancelled))
            supervised = await _supervised(supervised_model, form.file.path)
    prompts, text_vt = await query.prompts_vectors(opts.labels, opts.template)
    item, per_segment = query.classify(q, text_vt)
    return ClassifyResponse(
        labels=opts.labels, prompts=prompts, probabilities=item.tolist(), best=opts.labels[int(item.argmax())],
        segments=[SegmentProbabilities(start=s, end=e, probabilities=p.tolist())
                  for s, e, p in zip(q.starts, q.ends, per_segment)],
        temperature=query.temperature, supervised=supervised)


async def _supervised(clf: SupervisedClassifier | None, path: str) -> SupervisedScores | None:
    """The served classifier's scores for an uploaded file (None without `--classifier`)."""
    if clf is None:
        return None
    probs = await run_in_threadpool(clf.scores, path)
    return SupervisedScores(label=clf.label, classes=clf.classes, probabilities=probs,
                            best=clf.classes[max(range(len(probs)), key=probs.__getitem__)])


def _check_labels(opts: ClassifyForm, limit: int) -> None:
    check_count(opts.labels, limit, "labels")
    if len(set(opts.labels)) != len(opts.labels):
        raise ServiceError(400, "labels must be distinct")
    check_template(opts.template)
