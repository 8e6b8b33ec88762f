"""JSON merge patch: RFC 7396's examples (Appendix A and §3), and the inputs left untouched."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from index.merge_patch import merge_patch

RFC_APPENDIX_A = [
    ({"a": "b"}, {"a": "c"}, {"a": "c"}),
    ({"a": "b"}, {"b": "c"}, {"a": "b", "b": "c"}),
    ({"a": "b"}, {"a": None}, {}),
    ({"a": "b", "b": "c"}, {"a": None}, {"b": "c"}),
    ({"a": ["b"]}, {"a": "c"}, {"a": "c"}),
    ({"a": "c"}, {"a": ["b"]}, {"a": ["b"]}),
    ({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}, {"a": {"b": "d"}}),
    ({"a": [{"b": "c"}]}, {"a": [1]}, {"a": [1]}),
    (["a", "b"], ["c", "d"], ["c", "d"]),
    ({"a": "b"}, ["c"], ["c"]),
    ({"a": "foo"}, None, None),
    ({"a": "foo"}, "bar", "bar"),
    ({"e": None}, {"a": 1}, {"e": None, "a": 1}),
    ([1, 2], {"a": "b", "c": None}, {"a": "b"}),
    ({}, {"a": {"bb": {"ccc": None}}}, {"a": {"bb": {}}}),
]

RFC_SECTION_3_TARGET = {"title": "Goodbye!", "author": {"givenName": "John", "familyName": "Doe"},
                        "tags": ["example", "sample"], "content": "This will be unchanged"}
RFC_SECTION_3_PATCH = {"title": "Hello!", "phoneNumber": "+01-123-456-7890", "author": {"familyName": None},
                       "tags": ["example"]}
RFC_SECTION_3_RESULT = {"title": "Hello!", "author": {"givenName": "John"}, "tags": ["example"],
                        "content": "This will be unchanged", "phoneNumber": "+01-123-456-7890"}


@pytest.mark.parametrize("target, patch, result", RFC_APPENDIX_A)
def test_rfc7396_appendix_a(target: Any, patch: Any, result: Any) -> None:
    before = (copy.deepcopy(target), copy.deepcopy(patch))
    assert merge_patch(target, patch) == result
    assert (target, patch) == before  # pure: the inputs are not modified


def test_rfc7396_section_3_example() -> None:
    assert merge_patch(RFC_SECTION_3_TARGET, RFC_SECTION_3_PATCH) == RFC_SECTION_3_RESULT


def test_a_read_only_mapping_merges_like_a_dict() -> None:
    from types import MappingProxyType  # what Item.metadata is

    assert merge_patch(MappingProxyType({"a": 1, "b": {"c": 2}}), {"b": {"d": 3}}) == {"a": 1, "b": {"c": 2, "d": 3}}
