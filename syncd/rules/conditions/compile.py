"""The two compilers: `compile_condition` turns the parsed language (`language.Condition`, or
the raw YAML mapping) into nodes once per rule set, and `compile_test` turns a tree of nodes
into one generated function for the hot loop.
"""

from __future__ import annotations

from typing import Any

from syncd.rules import language
from syncd.rules.conditions.context import Test
from syncd.rules.conditions.generated import _Generator
from syncd.rules.conditions.nodes import (
    ALWAYS,
    Age,
    All,
    AnyOf,
    Became,
    Changed,
    Compare,
    Condition,
    Contains,
    Eq,
    Exists,
    FieldTest,
    In,
    Lacks,
    Matches,
    Ne,
    Not,
    NotIn,
)


def compile_condition(tree: Any) -> Condition:
    """Compile a parsed condition tree (the language's models), or a raw YAML condition
    mapping; None is always true.

    Raises `language.LocatedError` (a ValueError) for a raw mapping that does not parse.
    """
    if tree is None:
        return ALWAYS
    parsed = language.FieldCondition | language.AllOf | language.AnyOf | language.Not
    if not isinstance(tree, parsed):
        tree = language.parse_condition(tree)
    return _compile(tree)


def _compile(node: language.Condition) -> Condition:
    if isinstance(node, language.AllOf):
        return All([_compile(child) for child in node.all])
    if isinstance(node, language.AnyOf):
        return AnyOf([_compile(child) for child in node.any])
    if isinstance(node, language.Not):
        return Not(_compile(node.not_))
    return _field(node)


def _field(node: language.FieldCondition) -> Condition:
    path, op, value = node.field, node.op, node.value
    if op in ("gt", "gte", "lt", "lte"):
        return Compare(path, op, value)
    if op in ("older_than", "newer_than"):
        return Age(path, op, value)
    if op == "became":
        return Became(path, _compile(value))
    simple: dict[str, type[FieldTest]] = {
        "eq": Eq,
        "ne": Ne,
        "in": In,
        "not_in": NotIn,
        "contains": Contains,
        "lacks": Lacks,
        "matches": Matches,
        "exists": Exists,
        "changed": Changed,
    }
    return simple[op](path, value)  # type: ignore[call-arg]


def compile_test(condition: Condition) -> Test:
    """`condition.test` as one generated Python function: the usual tests (equality, lists,
    tags, regexes, numbers, exists) inlined over the record's fields, anything else through its
    `fast()` closure. Same answers as `test`; should the inlined code raise, the closures answer
    (so errors too are the closures' own)."""
    if condition is ALWAYS:
        return condition.fast()
    gen = _Generator()
    body = f"True if {condition.source(gen)} else False"
    return gen.build("test", body, condition.fast())  # type: ignore[no-any-return]


