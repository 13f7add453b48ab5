"""Check a benchmark's JSON result against a nested schema (key → type, tuple of types, or sub-schema)."""

from __future__ import annotations

import json
import math

NUMBER = (int, float)


def check(result, schema: dict, path: str = "result") -> dict:
    """Assert that ``result`` has every key of ``schema`` with the stated type; return it JSON-round-tripped.

    A schema value is a type, a tuple of types, a dict (a sub-schema for a dict value), or a one-item
    list ``[schema]`` (a list whose every item matches). Numbers must be finite.
    """
    result = json.loads(json.dumps(result))  # what eegmusic bench writes
    _check(result, schema, path)
    return result


def _check(value, schema, path: str) -> None:
    if isinstance(schema, dict):
        assert isinstance(value, dict), f"{path} is {type(value).__name__}, not a dict"
        for key, sub in schema.items():
            assert key in value, f"{path} has no '{key}' (has {sorted(value)})"
            _check(value[key], sub, f"{path}.{key}")
    elif isinstance(schema, list):
        assert isinstance(value, list) and value, f"{path} is not a non-empty list"
        for k, item in enumerate(value):
            _check(item, schema[0], f"{path}[{k}]")
    elif schema is bool:
        assert isinstance(value, bool), f"{path} = {value!r} is not a bool"
    else:
        assert isinstance(value, schema), f"{path} = {value!r} is not {schema}"
        assert not isinstance(value, bool), f"{path} = {value!r} is a bool, not {schema}"
        if isinstance(value, float):
            assert math.isfinite(value), f"{path} = {value} is not finite"
