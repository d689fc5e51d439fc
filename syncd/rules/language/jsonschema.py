"""The JSON Schema of rules files (docs/rules.md, "Editor support"): the YAML surface form,
as editors consume it; `syncd schema` prints it and syncd/shipped/schema/ holds a copy."""

from __future__ import annotations

from typing import Any

from syncd.rules.language.actions import ACTIONS
from syncd.rules.language.base import DEFS, VAR_REFERENCE, resolve_late_refs
from syncd.rules.language.files import RulesFile

_SCALAR = {"type": ["string", "number", "boolean", "null"]}
_VAR = {
    "type": "string",
    "pattern": f"^{VAR_REFERENCE.pattern}$",
    "description": "A rule var ('{{ vars.name }}'), replaced by its value when rules load",
}
_CONDITION_DEFS: dict[str, Any] = {
    "Condition": {
        "description": "field: test pairs (ANDed), and all/any/not",
        "type": "object",
        "minProperties": 1,
        "properties": {
            "all": {"type": "array", "minItems": 1, "items": {"$ref": DEFS + "Condition"}},
            "any": {"type": "array", "minItems": 1, "items": {"$ref": DEFS + "Condition"}},
            "not": {"$ref": DEFS + "Condition"},
        },
        "additionalProperties": {"$ref": DEFS + "Predicate"},
    },
    "Predicate": {
        "description": "A scalar (eq), a list (in), or a mapping of operators",
        "anyOf": [
            _SCALAR,
            {"type": "array", "items": _SCALAR},
            {
                "type": "object",
                "minProperties": 1,
                "additionalProperties": False,
                "properties": {
                    **{op: _SCALAR for op in ("eq", "ne", "contains", "lacks")},
                    **{
                        op: {"anyOf": [{"type": "array", "items": _SCALAR}, _VAR]}
                        for op in ("in", "not_in")
                    },
                    **{op: {"type": ["number", "string"]} for op in ("gt", "gte", "lt", "lte")},
                    **{op: {"anyOf": [{"type": "boolean"}, _VAR]} for op in ("exists", "changed")},
                    **{op: {"type": "string"} for op in ("matches", "older_than", "newer_than")},
                    "became": {"$ref": DEFS + "Predicate"},
                },
            },
        ],
    },
}


def json_schema() -> dict[str, Any]:
    """The JSON Schema of a rules file, as editors consume it (the YAML surface form)."""
    schema = RulesFile.model_json_schema(ref_template=DEFS + "{model}")
    defs = schema.setdefault("$defs", {})
    defs.update(_CONDITION_DEFS)
    variants = []
    for name, model in ACTIONS.items():
        body = model.body_schema()
        defs.update(body.pop("$defs", {}))
        variants.append(
            {
                "type": "object",
                "description": model.__doc__,
                "properties": {name: body},
                "required": [name],
                "additionalProperties": False,
            }
        )
    defs["Action"] = {"description": "One action: a one-key mapping", "oneOf": variants}
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **resolve_late_refs(schema)}
