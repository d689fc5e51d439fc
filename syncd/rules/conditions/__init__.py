"""Condition trees compiled once per rule set and evaluated against one record version.

`language.parse_condition` turns the YAML form of docs/rules.md ("Conditions") into a tree of
`FieldCondition(field, op, value)`, `AllOf`, `AnyOf` and `Not`; `compile.compile_condition`
turns that tree (or the raw YAML mapping) into the small node objects of `nodes`, so the hot
loop does no parsing, no regex compilation and no pydantic attribute access, and
`compile.compile_test` turns a whole tree into one function (`generated`: the usual tests
inlined, the rest through the nodes' closures). `context` holds the record version the nodes
read (`Context`) and the value helpers they share.

May import the standard library, `regex`, `syncd.businesstime` and the rule language
(`syncd.rules.language`); never the engine. The names below are the package's public entry.
"""

from syncd.rules.conditions.compile import compile_condition, compile_test
from syncd.rules.conditions.context import Context, Test, json_safe, resolve
from syncd.rules.conditions.nodes import ALWAYS, Age, All, Condition, Eq, In, entered, next_change

__all__ = [
    "ALWAYS",
    "Age",
    "All",
    "Condition",
    "Context",
    "Eq",
    "In",
    "Test",
    "compile_condition",
    "compile_test",
    "entered",
    "json_safe",
    "next_change",
    "resolve",
]
