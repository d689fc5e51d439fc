"""The code generator behind the hot loop: each node's `source` writes a Python expression
through `_Generator` (its constants, local names and field lookups), and `build` turns it into
one function that falls back to the nodes' own closures should the inlined code raise.
`_plain_held` generates the explanation of plain field tests ({path: value}).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from syncd.rules.conditions.context import _MISSING, Context, Explanation, json_safe, resolve

if TYPE_CHECKING:
    from syncd.rules.conditions.nodes import Condition

_SCALARS = frozenset({str, int, float, bool, type(None)})  # hashable, `in` cannot raise
_NUMBERS = frozenset({int, float})


class _Generator:
    """Collects the constants and local names of one generated function."""

    built = 0

    def __init__(self) -> None:
        self.names: dict[str, Any] = {"_SCALARS": _SCALARS, "_NUMBERS": _NUMBERS}
        self.count = 0

    def const(self, value: Any) -> str:
        name = f"_k{len(self.names)}"
        self.names[name] = value
        return name

    def var(self) -> str:
        self.count += 1
        return f"_v{self.count}"

    def value(self, path: str) -> str:
        """The field's value, as `resolve` finds it: a plain key straight from the fields, a
        two-part path (`custom.kind`) through a plain dict inline, deeper ones by `resolve`."""
        if "." not in path:
            return f"F.get({path!r})"
        if path.count(".") > 1:
            return f"{self.const(resolve)}(F, {path!r})"
        head, tail = path.split(".")
        v, w, missing, walk = self.var(), self.var(), self.const(_MISSING), self.const(resolve)
        inner = (
            f"({w}.get({tail!r}) if type({w} := F.get({head!r})) is dict else {walk}(F, {path!r}))"
        )
        return f"({v} if ({v} := F.get({path!r}, {missing})) is not {missing} else {inner})"

    def call(self, node: Condition) -> str:
        """The node's own `fast()` closure called on the context."""
        return f"{self.const(node.fast())}(ctx)"

    def check(self, check: Callable[..., bool], node: Condition, value: str) -> str:
        """`check(node, value, ctx)`: a FieldTest's own check on a value already looked up."""
        return f"{self.const(check)}({self.const(node)}, {value}, ctx)"

    def build(self, name: str, body: str, fallback: Callable[..., Any]) -> Any:
        """def name(ctx): F = ctx.fields; return body -- and on any exception, the answer (or
        the exception) of `fallback`, the closures the source was generated from."""
        self.names["_fallback"] = fallback
        source = (
            f"def {name}(ctx):\n"
            f"    F = ctx.fields\n"
            f"    try:\n"
            f"        return {body}\n"
            f"    except Exception:\n"
            f"        return _fallback(ctx)\n"
        )
        _Generator.built += 1  # a file name of its own: profilers tell the functions apart
        exec(compile(source, f"<condition {name} #{_Generator.built}>", "exec"), self.names)
        return self.names[name]




def _plain_held(paths: tuple[str, ...]) -> Callable[[Context], Explanation]:
    """{path: json_safe(value)} for each path, generated (scalars need no json_safe call)."""
    gen = _Generator()
    json = gen.const(json_safe)
    items = []
    for path in dict.fromkeys(paths):
        v = gen.var()
        items.append(
            f"{path!r}: ({v} if type({v} := {gen.value(path)}) in _SCALARS else {json}({v}))"
        )
    slow = lambda ctx: {path: json_safe(ctx.value(path)) for path in paths}  # noqa: E731
    return gen.build("held", "{" + ", ".join(items) + "}", slow)  # type: ignore[no-any-return]
