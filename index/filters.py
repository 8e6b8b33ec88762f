"""Metadata filters: a small dict language turned into parameterised SQL, per SQL dialect.

SQLite reads fields with `json_extract` (JSON null comes back as SQL NULL); PostgreSQL with
`jsonb #> path`, JSON null mapped to SQL NULL the same way and operands bound as `jsonb`, so both
engines give the same answers on the same metadata (numbers compare as numbers, 2004 = 2004.0).

Grammar (the conditions of one dict are ANDed; `$and`, `$or`, `$not` group them)::

    {"lang": "en"}                              equality (None matches a missing or null field)
    {"year": {"gte": 2000, "lt": 2010}}         ranges: gt, gte, lt, lte (numbers or strings)
    {"tag": {"in": ["a", "b"]}}                 membership: in, nin
    {"tags": {"contains": "cat"}}               the field is a JSON array holding the value
    {"source_url": {"exists": True}}            presence (non-null)
    {"author.name": {"ne": "x"}}                dotted names reach into nested objects
    {"$or": [{"lang": "en"}, {"year": {"gte": 2020}}]}    any of the listed filters
    {"$and": [{"$or": [...]}, {"$or": [...]}]}  all of them (useful to AND two groups)
    {"$not": {"tag": "x"}}                      the filter does not match (a missing field does not match)

Field names never start with `$`, so the group keys cannot clash with a field; groups nest up to
MAX_DEPTH deep, and the whole filter holds at most MAX_CLAUSES conditions. Each condition is true or
false, never SQL NULL (a NOT wraps its operand in COALESCE), so `$not` is the exact complement.

A value only matches values of its own JSON type: numbers (2004 = 2004.0), strings, booleans (true is
not 1), never arrays or objects — on SQLite and PostgreSQL alike.

Values never enter the SQL text: field names are checked against a strict pattern and become
JSON paths passed as parameters, operands are bound parameters. Both dialects use `?` marks; the
store turns them into its driver's style.
"""

from __future__ import annotations

import re
from typing import Any, Mapping

from .errors import FilterError

OPERATORS: tuple[str, ...] = ("eq", "ne", "gt", "gte", "lt", "lte", "in", "nin", "contains", "exists")
_COMPARE = {"eq": "=", "ne": "!=", "gt": ">", "gte": ">=", "lt": "<", "lte": "<="}
_FIELD = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")
_SCALARS = (str, int, float, bool)
MAX_CLAUSES = 64  # conditions in one `where` (each is a json_extract per row)
MAX_VALUES = 1000  # operands of one in/nin
MAX_DEPTH = 8  # nesting of $and / $or / $not groups
GROUPS: tuple[str, ...] = ("$and", "$or", "$not")


def _path(name: str) -> str:
    if not isinstance(name, str) or not _FIELD.match(name):
        raise FilterError(
            f"bad filter field {name!r}: accepted are metadata keys made of letters, digits and '_' "
            "(not starting with a digit), joined by '.' for nested objects")
    return "$." + name


def _scalar(field: str, op: str, value: Any, *, ordered: bool = False) -> Any:
    if ordered:
        ok = isinstance(value, (int, float, str)) and not isinstance(value, bool)
        what = "a number or a string"
    else:
        ok = isinstance(value, _SCALARS)
        what = "a string, number or boolean"
    if not ok:
        raise FilterError(f"filter {field!r}: operator {op!r} takes {what}, got {type(value).__name__}")
    if isinstance(value, float) and value != value:
        raise FilterError(f"filter {field!r}: operator {op!r} does not accept NaN")
    return value


def _jsonb(value: Any) -> Any:
    from psycopg.types.json import Jsonb  # only the PostgreSQL store needs the driver

    return Jsonb(value)


def _json_types(value: Any) -> str:
    """The JSON types (as SQLite's json_type/json_each name them) a value compares equal or ordered with."""
    if isinstance(value, bool):
        return "('true')" if value else "('false')"
    if isinstance(value, (int, float)):
        return "('integer', 'real')"
    return "('text')"


def _condition(field: str, op: str, value: Any, column: str, dialect: str) -> tuple[str, list[Any]]:
    """SQLite: json_extract gives SQL values, so each comparison also checks the JSON type: numbers compare
    with numbers, strings with strings, true/false with booleans only (not 1/0), never arrays or objects —
    the same answers as PostgreSQL's jsonb comparisons."""
    if dialect == "postgresql":
        return _pg_condition(field, op, value, column)
    path = _path(field)
    expr = f"json_extract({column}, ?)"
    if op in ("eq", "ne") and value is None:
        return (f"{expr} IS NULL" if op == "eq" else f"{expr} IS NOT NULL"), [path]
    if op in _COMPARE:
        v = _scalar(field, op, value, ordered=op not in ("eq", "ne"))
        typed = f"json_type({column}, ?) IN {_json_types(v)}"
        if isinstance(v, bool):  # the type is the value
            same, params = typed, [path]
        else:
            # value first: the type is then checked only on rows the comparison lets through (cheap filters)
            same, params = f"({expr} {_COMPARE['eq' if op == 'ne' else op]} ? AND {typed})", [path, v, path]
        if op == "ne":  # a missing field is "not equal" too
            return f"({expr} IS NULL OR NOT {same})", [path, *params]
        return same, params
    if op in ("in", "nin"):
        values = [_scalar(field, op, v) for v in _listed(field, op, value)]
        if not values:
            return ("1=0" if op == "in" else "1=1"), []
        groups: dict[str, list[Any]] = {}
        for v in values:
            groups.setdefault(_json_types(v), []).append(v)
        parts, params = [], []
        for types, vs in groups.items():
            if types in ("('true')", "('false')"):
                parts.append(f"json_type({column}, ?) IN {types}")
                params.append(path)
            else:
                parts.append(f"({expr} IN ({', '.join('?' * len(vs))}) AND json_type({column}, ?) IN {types})")
                params += [path, *vs, path]
        member = parts[0] if len(parts) == 1 else "(" + " OR ".join(parts) + ")"
        if op == "in":
            return member, params
        return f"({expr} IS NULL OR NOT {member})", [path, *params]
    if op == "contains":
        v = _scalar(field, op, value)
        typed = f"je.type IN {_json_types(v)}"
        return (f"(json_type({column}, ?) = 'array' AND EXISTS "
                f"(SELECT 1 FROM json_each({column}, ?) AS je WHERE je.value = ? AND {typed}))"), [path, path, v]
    if op == "exists":
        if not isinstance(value, bool):
            raise FilterError(f"filter {field!r}: operator 'exists' takes true or false, got {value!r}")
        return (f"{expr} IS NOT NULL" if value else f"{expr} IS NULL"), [path]
    raise FilterError(f"unknown filter operator {op!r} for {field!r}; accepted: {', '.join(OPERATORS)}")


def _listed(field: str, op: str, value: Any) -> Any:
    """The operand of in / nin: a list of at most MAX_VALUES values (the same rule on every store)."""
    if not isinstance(value, (list, tuple, set, frozenset)):
        raise FilterError(f"filter {field!r}: operator {op!r} takes a list of values, got {type(value).__name__}")
    if len(value) > MAX_VALUES:
        raise FilterError(f"filter {field!r}: operator {op!r} lists {len(value)} values; the limit is {MAX_VALUES}")
    return value


def _pg_condition(field: str, op: str, value: Any, column: str) -> tuple[str, list[Any]]:
    """The same operators over JSONB: the path is a text[] parameter, operands are jsonb parameters."""
    path = _path(field)[2:].split(".")
    expr = f"NULLIF({column} #> CAST(? AS text[]), 'null'::jsonb)"
    if op in ("eq", "ne") and value is None:
        return (f"{expr} IS NULL" if op == "eq" else f"{expr} IS NOT NULL"), [path]
    if op in _COMPARE:
        v = _jsonb(_scalar(field, op, value, ordered=op not in ("eq", "ne")))
        if op == "ne":
            return f"({expr} IS NULL OR {expr} != ?)", [path, path, v]
        if op in ("eq",):
            return f"{expr} = ?", [path, v]
        typ = "string" if isinstance(value, str) else "number"  # jsonb orders across types; SQLite does not
        return f"(jsonb_typeof({expr}) = '{typ}' AND {expr} {_COMPARE[op]} ?)", [path, path, v]
    if op in ("in", "nin"):
        values = [_jsonb(_scalar(field, op, v)) for v in _listed(field, op, value)]
        if not values:
            return ("1=0" if op == "in" else "1=1"), []
        marks = ", ".join("?" * len(values))
        if op == "in":
            return f"{expr} IN ({marks})", [path, *values]
        return f"({expr} IS NULL OR {expr} NOT IN ({marks}))", [path, path, *values]
    if op == "contains":
        v = _scalar(field, op, value)
        return (f"(jsonb_typeof({expr}) = 'array' AND {expr} @> ?)"), [path, path, _jsonb([v])]
    if op == "exists":
        if not isinstance(value, bool):
            raise FilterError(f"filter {field!r}: operator 'exists' takes true or false, got {value!r}")
        return (f"{expr} IS NOT NULL" if value else f"{expr} IS NULL"), [path]
    raise FilterError(f"unknown filter operator {op!r} for {field!r}; accepted: {', '.join(OPERATORS)}")


class _Budget:
    """Conditions compiled so far across the whole filter, groups included (one bound for the request)."""

    def __init__(self) -> None:
        self.clauses = 0

    def take(self, n: int) -> None:
        self.clauses += n
        if self.clauses > MAX_CLAUSES:
            raise FilterError(f"`where` has more than {MAX_CLAUSES} conditions; the limit is {MAX_CLAUSES}")


def _group(key: str, spec: Any, column: str, dialect: str, depth: int, budget: _Budget) -> tuple[str, list[Any]]:
    """One `$and` / `$or` (a non-empty list of filters) or `$not` (one filter)."""
    if depth >= MAX_DEPTH:
        raise FilterError(f"`where` nests {key} deeper than {MAX_DEPTH} levels; the limit is {MAX_DEPTH}")
    if key == "$not":
        sql, params = _compile(spec, column, dialect, depth + 1, budget)
        return f"NOT COALESCE(({sql}), FALSE)", params
    if not isinstance(spec, (list, tuple)) or not spec:
        got = "an empty list" if isinstance(spec, (list, tuple)) else type(spec).__name__
        raise FilterError(f"`where` {key} takes a non-empty list of filters, got {got}")
    parts, params = [], []
    for sub in spec:
        sql, p = _compile(sub, column, dialect, depth + 1, budget)
        parts.append(f"({sql})")
        params.extend(p)
    return (" OR " if key == "$or" else " AND ").join(parts), params


def _compile(where: Any, column: str, dialect: str, depth: int, budget: _Budget) -> tuple[str, list[Any]]:
    if not isinstance(where, Mapping):
        raise FilterError(f"`where` must be a dict of field → value or field → {{operator: value}}, "
                          f"got {type(where).__name__}")
    clauses: list[str] = []
    params: list[Any] = []
    for field, spec in where.items():
        if isinstance(field, str) and field.startswith("$"):
            if field not in GROUPS:
                raise FilterError(f"unknown filter group {field!r}; accepted: {', '.join(GROUPS)} "
                                  "(field names cannot start with '$')")
            sql, p = _group(field, spec, column, dialect, depth, budget)
            clauses.append(sql)
            params.extend(p)
            continue
        if isinstance(spec, Mapping):
            if not spec:
                raise FilterError(f"filter {field!r}: empty operator dict; accepted: {', '.join(OPERATORS)}")
            pairs = list(spec.items())
        elif spec is None or isinstance(spec, _SCALARS):
            pairs = [("eq", spec)]
        else:
            raise FilterError(f"filter {field!r}: expected a value or an operator dict "
                              f"({', '.join(OPERATORS)}), got {type(spec).__name__}")
        budget.take(len(pairs))
        for op, value in pairs:
            sql, p = _condition(field, op, value, column, dialect)
            clauses.append(sql)
            params.extend(p)
    if not clauses:
        return "1=1", []
    return " AND ".join(f"({c})" for c in clauses), params


def compile_where(where: Mapping[str, Any] | None, column: str = "metadata",
                  dialect: str = "sqlite") -> tuple[str, list[Any]]:
    """Turn a `where` dict into (SQL boolean expression, parameters) for `dialect` ("sqlite" or
    "postgresql"). Empty/None → ("1=1", [])."""
    if where is None:
        return "1=1", []
    return _compile(where, column, dialect, 0, _Budget())
