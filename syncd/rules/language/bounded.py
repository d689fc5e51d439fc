"""A template's cost is bounded: an admin's mistake (`{{ 9 ** (9 ** 9) }}`, two nested
`range(100000)` loops, `'x' * 10**9`, `|center(10**9)`) fails that one render with a clear
error instead of hanging `syncd check` or the daemon (whose watchdog would restart it in a loop).

- `**` and `*` are intercepted (`intercepted_binops`), so Jinja never folds them as constants
  while compiling, and at render time a result too large is refused before it is computed.
- `range` yields at most `MAX_RANGE` numbers; a call or filter asked for a text wider than
  `MAX_OUTPUT` (`center`, `ljust`, `indent`, format widths) is refused.
- Every render has a budget of `MAX_STEPS` steps (a loop iteration, an attribute or item
  lookup, a call, a filter, an output chunk) and of `MAX_SECONDS` of wall time, checked at
  every step, and at most `MAX_OUTPUT` characters of output. Steps make the common case
  deterministic (the same record always renders the same way); the clock is only the backstop.

`cost_problem` is the static half, for `syncd check`: constant powers and products and nested
constant `range` loops are priced before anything runs, so check names the costly template.
"""

from __future__ import annotations

import functools
import math
import operator
import re
import time
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, ClassVar

from jinja2 import Template, nodes
from jinja2.compiler import CodeGenerator
from jinja2.sandbox import SandboxedEnvironment

from syncd.errors import Skippable

MAX_RANGE = 10_000
MAX_OUTPUT = 4 * 1024 * 1024  # characters of one rendered text
MAX_STEPS = 1_000_000
MAX_SECONDS = 2.0
MAX_POWER_BITS = 4096  # an integer power of at most ~1,200 digits
_WIDE_FORMAT = re.compile(r"[%:<>^=]\s*[-+ #0]*(\d{6,})|\.(\d{6,})")


class TooCostly(Skippable):
    """A template exceeded its budget; the message says which limit."""


@dataclass
class _Budget:
    steps: int
    deadline: float

    def step(self) -> None:
        self.steps -= 1
        if self.steps < 0:
            raise TooCostly(f"template too costly: more than {MAX_STEPS:,} steps")
        if self.steps % 1024 == 0 and time.monotonic() > self.deadline:
            raise TooCostly(f"template too costly: more than {MAX_SECONDS:g} s to render")


_BUDGET: ContextVar[_Budget | None] = ContextVar("syncd_template_budget", default=None)


def _step() -> None:
    budget = _BUDGET.get()
    if budget is not None:
        budget.step()


class _TickingCodeGenerator(CodeGenerator):
    """Jinja's code generator, with a budget step at the top of every loop iteration (the
    line Jinja writes there), so that even a loop whose body does nothing is counted."""

    def writeline(self, x: str, node: nodes.Node | None = None, extra: int = 0) -> None:
        super().writeline(x, node, extra)
        if x == "_loop_vars = {}":
            super().writeline("environment.step()")


def _too_wide(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > MAX_OUTPUT


def bounded_power(left: Any, right: Any) -> Any:
    if (isinstance(left, int) and isinstance(right, int) and right > 0 and abs(left) > 1
            and right * math.log2(abs(left)) > MAX_POWER_BITS):
        raise TooCostly(f"template too costly: {left} ** {right} has more than "
                        f"{MAX_POWER_BITS} bits")
    return left**right


def bounded_product(left: Any, right: Any) -> Any:
    for seq, times in ((left, right), (right, left)):
        if (isinstance(seq, str | list | tuple) and isinstance(times, int)
                and len(seq) * times > MAX_OUTPUT):
            raise TooCostly(f"template too costly: a sequence of {len(seq)} repeated "
                                f"{times} times")
    return left * right


def bounded_modulo(left: Any, right: Any) -> Any:
    if isinstance(left, str) and _WIDE_FORMAT.search(left):
        raise TooCostly("template too costly: a format width over the output limit")
    return left % right


def bounded_range(*args: int) -> range:
    found = range(*args)
    if len(found) > MAX_RANGE:
        raise TooCostly(f"template too costly: range of {len(found):,} (at most {MAX_RANGE:,})")
    return found


class BoundedEnvironment(SandboxedEnvironment):
    """The sandbox with the budget above (see the module docstring)."""

    code_generator_class = _TickingCodeGenerator
    intercepted_binops = frozenset({"**", "*", "%"})
    _BINOPS: ClassVar[dict[str, Callable[[Any, Any], Any]]] = {
        "**": bounded_power, "*": bounded_product, "%": bounded_modulo}

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.globals["range"] = bounded_range
        self.filters = {name: _bounded_filter(f) for name, f in self.filters.items()}

    @staticmethod
    def step() -> None:
        _step()

    def call_binop(self, context: Any, operator_: str, left: Any, right: Any) -> Any:
        _step()
        return self._BINOPS.get(operator_, _PLAIN.get(operator_, _missing))(left, right)

    def getattr(self, obj: Any, attribute: str) -> Any:
        _step()
        if attribute in ("format", "format_map") and isinstance(obj, str) and \
                _WIDE_FORMAT.search(obj):
            raise TooCostly("template too costly: a format width over the output limit")
        return super().getattr(obj, attribute)

    def getitem(self, obj: Any, argument: Any) -> Any:
        _step()
        return super().getitem(obj, argument)

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        _step()
        if any(_too_wide(a) for a in (*args, *kwargs.values())) and isinstance(
                getattr(__obj, "__self__", None), str):
            raise TooCostly(f"template too costly: {__obj.__name__} wider than {MAX_OUTPUT:,}")
        return super().call(__context, __obj, *args, **kwargs)


_PLAIN = {"**": operator.pow, "*": operator.mul, "%": operator.mod}


def _missing(left: Any, right: Any) -> Any:
    raise TooCostly("unknown operator")


def _bounded_filter(function: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(function)  # keeps Jinja's pass_context / pass_eval_context marks
    def bounded(*args: Any, **kwargs: Any) -> Any:
        _step()
        if any(_too_wide(a) for a in (*args[1:], *kwargs.values())):
            name = function.__name__.removeprefix('do_')
            raise TooCostly(f"template too costly: |{name} wider than "
                            f"{MAX_OUTPUT:,}")
        return function(*args, **kwargs)

    return bounded


def render_bounded(template: Template, context: Any) -> str:
    """`template.render(context)` within the budget; raises TooCostly past it."""
    budget = _Budget(MAX_STEPS, time.monotonic() + MAX_SECONDS)
    token = _BUDGET.set(budget)
    try:
        return "".join(_capped(template.generate(context), budget))
    except RecursionError:
        raise TooCostly("template too costly: a macro calls itself without end") from None
    finally:
        _BUDGET.reset(token)


def _capped(chunks: Iterator[str], budget: _Budget) -> Iterator[str]:
    size = 0
    for chunk in chunks:
        budget.step()
        size += len(chunk)
        if size > MAX_OUTPUT:
            raise TooCostly(f"template too costly: output over {MAX_OUTPUT:,} characters")
        yield chunk


# ------------------------------------------------------------------------- the static half
def cost_problem(tree: nodes.Template) -> str | None:
    """Why a parsed template is too costly before it runs, or None: a constant power or
    repetition too large to compute, a constant range over `MAX_RANGE`, or nested loops over
    constant ranges whose iterations multiply past `MAX_STEPS`."""
    for node in tree.find_all((nodes.Pow, nodes.Mul)):
        left, right = _const(node.left), _const(node.right)
        if left is not _NOT_CONST and right is not _NOT_CONST:
            try:
                (bounded_power if isinstance(node, nodes.Pow) else bounded_product)(left, right)
            except TooCostly as exc:
                return f"{exc} (line {node.lineno})"
            except Exception:
                continue
    for loop in tree.find_all(nodes.For):
        if _range_length(loop) > MAX_RANGE:
            return f"template too costly: range over {MAX_RANGE:,} (line {loop.lineno})"
        if _iterations(loop) > MAX_STEPS:
            return (f"template too costly: nested loops of more than {MAX_STEPS:,} iterations "
                    f"(line {loop.lineno})")
    return None


_NOT_CONST = object()


def _const(node: nodes.Node) -> Any:
    if isinstance(node, nodes.Const):
        return node.value
    if isinstance(node, nodes.Pow | nodes.Mul):  # 9 ** (9 ** 9): the inner power is priced
        left, right = _const(node.left), _const(node.right)
        if left is _NOT_CONST or right is _NOT_CONST:
            return _NOT_CONST
        try:
            return (bounded_power if isinstance(node, nodes.Pow) else bounded_product)(
                left, right)
        except Exception:
            return _NOT_CONST
    return _NOT_CONST


def _range_length(loop: nodes.For) -> int:
    """How many times `loop` runs if it iterates a constant `range(...)`; else 1."""
    it = loop.iter
    constant = all(isinstance(a, nodes.Const) and isinstance(a.value, int) for a in
                   getattr(it, "args", ()))
    named = isinstance(it, nodes.Call) and isinstance(it.node, nodes.Name)
    if named and it.node.name == "range" and constant:  # type: ignore[attr-defined]
        try:
            return len(range(*(a.value for a in it.args)))  # type: ignore[attr-defined]
        except (TypeError, ValueError):
            return 1
    return 1


def _iterations(loop: nodes.For) -> int:
    """The iterations of `loop` and the loops nested in it, over constant ranges."""
    inner = max((_iterations(child) for child in _direct_loops(loop)), default=1)
    return _range_length(loop) * inner


def _direct_loops(loop: nodes.For) -> Iterator[nodes.For]:
    for child in loop.iter_child_nodes():
        if isinstance(child, nodes.For):
            yield child
        else:
            yield from _direct_loops(child)  # type: ignore[arg-type]
