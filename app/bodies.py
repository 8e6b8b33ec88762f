"""Routes that take JSON *or* a multipart upload: parse either into the same pydantic models.

FastAPI picks one body type per route, and its `UploadFile` buffers the whole upload before the
handler runs; these routes read the body themselves (`uploads.py`), so the OpenAPI document is
declared here by hand (`request_body`, `json_body`) and the models it names are added to the
components when the schema is built (`add_documented_models`: nothing is registered at import time).
`error_responses` is the one declaration of which statuses answer with the service's error body.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, TypeAdapter, ValidationError

from model.media import MediaError

from . import schemas
from .errors import ServiceError
from .limits import loads_limited
from .schemas import JsonObject
from .settings import Settings
from .uploads import ParsedForm, UploadedFile, read_json

__all__ = ["validate", "json_model", "form_model", "request_body", "json_body", "error_responses",
           "add_documented_models", "split_list", "named_upload", "where_param"]

M = TypeVar("M", bound=BaseModel)
_REF = "#/components/schemas/"
_BINARY = {"type": "string", "format": "binary", "description": "a video or audio file (decoded to check it)"}


def validate(model: type[M], data: Any) -> M:
    """`model.model_validate`, with pydantic's errors turned into the service's 422 body."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        errors = [{**e, "loc": ("body", *e["loc"])} for e in exc.errors(include_url=False, include_context=False)]
        raise RequestValidationError(errors) from None


_WHERE = TypeAdapter(JsonObject)


def where_param(raw: str | None) -> dict[str, Any] | None:
    """A `where` query parameter: JSON within the depth limit, an object, its text valid (as in bodies)."""
    if not raw:
        return None
    filters = loads_limited(raw, what="'where'")
    if not isinstance(filters, dict):
        raise ServiceError(400, "'where' must be a JSON object, e.g. {\"lang\": \"en\"}")
    try:
        return _WHERE.validate_python(filters)
    except ValidationError as exc:
        errors = [{**e, "loc": ("query", "where", *e["loc"])}
                  for e in exc.errors(include_url=False, include_context=False)]
        raise RequestValidationError(errors) from None


def _content_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


async def json_model(request: Request, model: type[M], settings: Settings) -> M:
    ctype = _content_type(request)
    if ctype and ctype != "application/json" and not ctype.endswith("+json"):
        raise ServiceError(415, f"Content-Type {ctype!r} is not accepted here; send application/json or "
                                "multipart/form-data with a 'file' part")
    return validate(model, await read_json(request, max_bytes=settings.max_json_bytes))


@contextmanager
def named_upload(upload: UploadedFile) -> Iterator[None]:
    """Media errors name the client's file, not the server's temp file."""
    try:
        yield
    except MediaError as exc:
        name = repr(upload.filename or "upload")
        raise type(exc)(str(exc).replace(repr(upload.path.name), name).replace(upload.path.name, name)) from None


def split_list(values: list[str] | None, *, commas: bool = True) -> list[str] | None:
    """Repeated form fields, a JSON array in one field, or (with `commas`) one comma-separated
    field -> a list. Labels keep their commas ("a dog, running" is one label)."""
    if not values:
        return None
    if len(values) > 1:
        return values
    v = values[0].strip()
    if v.startswith("["):
        parsed = loads_limited(v, what=f"form value {v[:80]!r} (it starts like a JSON array)")
        if isinstance(parsed, list):
            return [str(x) for x in parsed]
    return [p.strip() for p in v.split(",") if p.strip()] if commas else values


def form_model(model: type[M], form: ParsedForm, *, lists: tuple[str, ...] = (), jsons: tuple[str, ...] = (),
               keep_commas: tuple[str, ...] = ()) -> M:
    """Form fields -> `model`: list fields from repeated values, JSON fields parsed, the rest as text."""
    data: dict[str, Any] = {}
    for name, values in form.fields.items():
        if name in lists or name in keep_commas:
            data[name] = split_list(values, commas=name not in keep_commas)
        elif name in jsons:
            raw = values[-1]
            data[name] = loads_limited(raw, what=f"form field {name!r}") if raw.strip() else None
        else:
            data[name] = values[-1]
    return validate(model, data)


def request_body(json_schema: type[BaseModel] | None, form_props: dict[str, Any], *, required: list[str],
                 description: str) -> dict[str, Any]:
    """`openapi_extra` describing a JSON and/or a multipart body (the models join the components)."""
    content: dict[str, Any] = {}
    if json_schema is not None:
        content["application/json"] = {"schema": {"$ref": f"{_REF}{json_schema.__name__}"}}
    content["multipart/form-data"] = {"schema": {"type": "object", "required": required,
                                                 "properties": {"file": _BINARY, **form_props}}}
    return {"requestBody": {"required": True, "description": description, "content": content}}


def json_body(json_schema: type[BaseModel]) -> dict[str, Any]:
    """`openapi_extra` for a route that reads a JSON body with `json_model` (no multipart)."""
    return {"requestBody": {"required": True, "content": {"application/json": {
        "schema": {"$ref": f"{_REF}{json_schema.__name__}"}}}}}


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """`responses=` entries: these statuses answer with the ErrorBody shape."""
    return {c: {"model": schemas.ErrorBody} for c in codes}


def _request_models(schema: dict[str, Any]) -> dict[str, type[BaseModel]]:
    """The app.schemas models that request bodies refer to by `$ref`."""
    found: dict[str, type[BaseModel]] = {}
    for ops in schema.get("paths", {}).values():
        for op in ops.values():
            for media in op.get("requestBody", {}).get("content", {}).values():
                ref = media.get("schema", {}).get("$ref", "")
                model = getattr(schemas, ref.removeprefix(_REF), None) if ref.startswith(_REF) else None
                if isinstance(model, type) and issubclass(model, BaseModel):
                    found[model.__name__] = model
    return found


def add_documented_models(schema: dict[str, Any]) -> dict[str, Any]:
    """Put the models named by `request_body`/`json_body` (and what they reference) into the OpenAPI
    components, and document 422s with the service's own error body (not FastAPI's HTTPValidationError)."""
    comps = schema.setdefault("components", {}).setdefault("schemas", {})
    for name, model in _request_models(schema).items():
        js = model.model_json_schema(ref_template=_REF + "{model}")
        for dname, d in js.pop("$defs", {}).items():
            comps.setdefault(dname, d)
        comps[name] = js
    for ops in schema.get("paths", {}).values():
        for op in ops.values():
            body = op.get("responses", {}).get("422", {}).get("content", {}).get("application/json", {})
            if body.get("schema", {}).get("$ref", "").endswith("/HTTPValidationError"):
                body["schema"] = {"$ref": "#/components/schemas/ErrorBody"}
    comps.pop("HTTPValidationError", None)
    comps.pop("ValidationError", None)
    return schema
