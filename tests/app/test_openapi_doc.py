"""The OpenAPI document names every request body and error body without any router registering models
at import time: `bodies.add_documented_models` finds them from the routes' `$ref`s when it is built."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from app import bodies
from app.cli import BUNDLED_DEMO_MODEL
from app.main import create_app
from app.settings import Settings


def _refs(node: Any) -> set[str]:
    if isinstance(node, dict):
        return set().union(*(({v.rsplit("/", 1)[-1]} if k == "$ref" else _refs(v)) for k, v in node.items()), set())
    if isinstance(node, list):
        return set().union(*map(_refs, node), set())
    return set()


def test_every_body_and_error_model_is_in_the_components(tmp_path: Path) -> None:
    schema = create_app(Settings(model_dir=BUNDLED_DEMO_MODEL, data_dir=tmp_path)).openapi()
    components = schema["components"]["schemas"]
    assert _refs(schema) - set(components) == set()  # every $ref resolves
    bodies_read_by_hand = {"ItemCreateRequest", "ItemPatch", "SearchRequest", "ClassifyRequest", "EmbedTextRequest",
                           "OpenAIEmbeddingRequest"}
    assert bodies_read_by_hand <= set(components)
    assert schema["paths"]["/v1/embeddings"]["post"]["responses"]["400"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/OpenAIErrorBody"}  # /v1 answers in OpenAI's error shape
    assert schema["paths"]["/search"]["post"]["responses"]["400"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ErrorBody"}
    assert not hasattr(bodies, "DOCUMENTED_MODELS")  # no registry a router could mutate
