"""The compiled condition nodes, one class per operator of docs/rules.md ("Conditions") plus
`All`, `AnyOf` and `Not`. `Condition.test` answers a bare bool, `Condition.explain` also
returns the field values that decided it (for the intent's `reason` and `syncd audit`), and
`Condition.thresholds` lists the instants at which an age test changes its answer by time
alone: `next_change` and `entered` use them to find the exact instant a condition starts or
stops holding, so the engine wakes up exactly then and keys an entry by the instant it really
happened. `fast()` is `test` as one closure; `source` is the node's expression for
`compile_test`, and `held` the explanation as one closure.

Decisions where the spec (docs/rules.md, "Conditions") is silent:
- a missing field and a null value are the same (`None`); `eq: null` and `exists: false` match
  it; `ne` and `not_in` are the exact negations of `eq` and `in`; `lacks` is true on null (an
  absent list lacks everything); every other operator is false on null, never an exception;
- on a list-valued field (tags) `in` is true when any element is in the list and `not_in` when
  none is; `contains`/`lacks` on a string test substrings; `matches` on a list is true when any
  element matches; non-string scalars are matched as their text;
- comparisons compare numbers with numbers, dates with dates and instants with instants (an
  ISO string, a date or a datetime on either side: a date is its 00:00 in the rule's calendar
  timezone; a naive datetime in a rule is local time on that calendar, in a record UTC);
  anything else is false;
- `older_than: D` holds from `value + D` on (inclusive), `newer_than: D` strictly before it; `D`
  is a wall or business offset applied with the rule's calendar (as durations.apply_offset);
- `changed` and `became` need a previous observed version: a record seen for the first time has
  no transition, so both are false for it (`changed: false` is true).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import date, datetime, timedelta
from decimal import Decimal
from functools import partial
from typing import Any

import regex

from syncd.businesstime.durations import Offset
from syncd.businesstime.instants import as_instant, parse_date
from syncd.rules.conditions.context import Context, Explanation, Test, json_safe, resolve
from syncd.rules.conditions.generated import _Generator, _plain_held

_LISTS = frozenset({list, tuple, set, frozenset})
_US = timedelta(microseconds=1)


def _freeze(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float | Decimal) and not isinstance(value, bool)


def _is_list(value: Any) -> bool:
    return isinstance(value, list | tuple | set | frozenset)


class Condition:
    """A compiled condition: `test` for the hot loop, `explain` for audit, `thresholds` for time."""

    __slots__ = ()

    def test(self, ctx: Context) -> bool:
        raise NotImplementedError

    def fast(self) -> Test:
        """`test` as one closure for the hot loop: no method dispatch, no generators."""
        return self.test

    def source(self, gen: _Generator) -> str:
        """A Python expression, true exactly when the condition holds, for `compile_test`.

        Nodes without a source of their own call their `fast()` closure."""
        return f"{gen.const(self.fast())}(ctx)"

    def explain(self, ctx: Context) -> tuple[bool, Explanation]:
        """The answer plus the field values that decided it."""
        raise NotImplementedError

    def held(self) -> Callable[[Context], Explanation]:
        """`explain(ctx)[1]` as one closure, for contexts in which the condition holds (the
        engine explains a rule's `when` only when it acts)."""
        return lambda ctx: self.explain(ctx)[1]

    def thresholds(self, ctx: Context, out: list[datetime]) -> None:
        """Append every instant at which an age test in this tree changes its answer.

        Between two such instants the answer is constant, which is what lets the engine find
        the exact instant a condition started or stops holding (`next_change`, `entered`).
        """

    def equalities(self) -> Mapping[str, frozenset[Any]]:
        """Field -> hashable values, one of which the field must hold for the condition to hold.

        Lets the engine skip rules that cannot match a record without evaluating them.
        """
        return {}


class Always(Condition):
    __slots__ = ()

    def test(self, ctx: Context) -> bool:
        return True

    def explain(self, ctx: Context) -> tuple[bool, Explanation]:
        return True, {}

    def held(self) -> Callable[[Context], Explanation]:
        return lambda ctx: {}

    def source(self, gen: _Generator) -> str:
        return "True"


ALWAYS = Always()


class FieldTest(Condition):
    """One operator on one field's value; subclasses implement `check(value, ctx)`."""

    __slots__ = ("path",)

    def __init__(self, path: str) -> None:
        self.path = path

    def check(self, value: Any, ctx: Context) -> bool:
        raise NotImplementedError

    def test(self, ctx: Context) -> bool:
        return self.check(ctx.value(self.path), ctx)

    def fast(self) -> Test:
        check, path = self.check, self.path
        if "." in path:
            return lambda ctx: check(ctx.value(path), ctx)
        return lambda ctx: check(ctx.fields.get(path), ctx)

    def explain(self, ctx: Context) -> tuple[bool, Explanation]:
        return self.test(ctx), {self.path: json_safe(ctx.value(self.path))}

    def held(self) -> Callable[[Context], Explanation]:
        if not _plain_explanation(self):
            return super().held()
        return _plain_held((self.path,))


def _plain_explanation(condition: Condition) -> bool:
    """Whether the condition explains itself as {its path: its value}."""
    return isinstance(condition, FieldTest) and type(condition).explain is FieldTest.explain


class Eq(FieldTest):
    __slots__ = ("expected", "temporal")

    def __init__(self, path: str, expected: Any) -> None:
        super().__init__(path)
        self.expected = _freeze(expected)
        self.temporal = isinstance(expected, date)

    def check(self, value: Any, ctx: Context) -> bool:
        if _freeze(value) == self.expected:
            return True
        if self.temporal and value is not None:
            left = as_instant(value, ctx.tz)
            return left is not None and left == as_instant(self.expected, ctx.tz, ctx.tz)
        return False

    def fast(self) -> Test:
        path, expected = self.path, self.expected
        if self.temporal or isinstance(expected, tuple) or "." in path:
            return FieldTest.fast(self)  # self.check: Eq's, or Ne's (already negated)
        return lambda ctx: bool(ctx.fields.get(path) == expected)

    def source(self, gen: _Generator) -> str:
        if self.temporal or isinstance(self.expected, tuple):
            return gen.call(self)
        equal = f"({gen.value(self.path)} == {gen.const(self.expected)})"
        return f"(not {equal})" if isinstance(self, Ne) else equal

    def equalities(self) -> Mapping[str, frozenset[Any]]:
        if self.temporal or self.expected.__hash__ is None:
            return {}
        return {self.path: frozenset({self.expected})}


class Ne(Eq):
    __slots__ = ()

    def check(self, value: Any, ctx: Context) -> bool:
        return not super().check(value, ctx)

    def fast(self) -> Test:
        if self.temporal or isinstance(self.expected, tuple) or "." in self.path:
            return FieldTest.fast(self)  # Ne.check is the negation already
        equal = Eq.fast(self)
        return lambda ctx: not equal(ctx)

    def equalities(self) -> Mapping[str, frozenset[Any]]:
        return {}


class In(FieldTest):
    __slots__ = ("members", "temporal")

    def __init__(self, path: str, options: Iterable[Any]) -> None:
        super().__init__(path)
        options = [_freeze(o) for o in options]
        self.members = frozenset(o for o in options if o.__hash__ is not None)
        self.temporal = tuple(Eq(path, o) for o in options if isinstance(o, date))

    def check(self, value: Any, ctx: Context) -> bool:
        if _is_list(value):
            return any(self._one(v, ctx) for v in value)
        return self._one(value, ctx)

    def _one(self, value: Any, ctx: Context) -> bool:
        try:
            if value in self.members:
                return True
        except TypeError:  # an unhashable value (a mapping) is never a member
            return False
        return any(eq.check(value, ctx) for eq in self.temporal)

    def fast(self) -> Test:
        path, members = self.path, self.members
        if self.temporal or "." in path:
            return FieldTest.fast(self)  # self.check: In's, or NotIn's (already negated)
        check = partial(In.check, self)  # In's own, also in a NotIn (which negates the answer)

        def test(ctx: Context) -> bool:
            value = ctx.fields.get(path)
            if type(value) in _LISTS:
                return check(value, ctx)
            try:
                return value in members
            except TypeError:
                return False

        return test

    def source(self, gen: _Generator) -> str:
        if self.temporal:
            return gen.call(self)
        v, members = gen.var(), gen.const(self.members)
        scalar = f"type({v} := {gen.value(self.path)}) in _SCALARS"
        inside = f"({v} in {members} if {scalar} else {gen.check(In.check, self, v)})"
        return f"(not {inside})" if isinstance(self, NotIn) else inside

    def equalities(self) -> Mapping[str, frozenset[Any]]:
        return {} if self.temporal else {self.path: self.members}


class NotIn(In):
    __slots__ = ()

    def check(self, value: Any, ctx: Context) -> bool:
        return not super().check(value, ctx)

    def fast(self) -> Test:
        if self.temporal or "." in self.path:
            return FieldTest.fast(self)  # NotIn.check is the negation already
        inside = In.fast(self)
        return lambda ctx: not inside(ctx)

    def equalities(self) -> Mapping[str, frozenset[Any]]:
        return {}


class Contains(FieldTest):
    """List or mapping membership, substring on text; false on null."""

    __slots__ = ("wanted",)

    def __init__(self, path: str, wanted: Any) -> None:
        super().__init__(path)
        self.wanted = wanted

    def present(self, value: Any) -> bool | None:
        """Whether `wanted` is in `value`; None when `value` cannot hold anything."""
        if isinstance(value, str):
            return isinstance(self.wanted, str) and self.wanted in value
        if _is_list(value) or isinstance(value, Mapping):
            try:
                return self.wanted in value
            except TypeError:
                return False
        return None

    def check(self, value: Any, ctx: Context) -> bool:
        return self.present(value) is True

    def source(self, gen: _Generator) -> str:
        v, wanted = gen.var(), gen.const(self.wanted)
        inside = "not in" if isinstance(self, Lacks) else "in"
        listed = f"type({v} := {gen.value(self.path)}) is list"
        return f"({wanted} {inside} {v} if {listed} else {gen.check(type(self).check, self, v)})"


class Lacks(Contains):
    """The negation of `contains`, true on null (an absent list lacks everything)."""

    __slots__ = ()

    def check(self, value: Any, ctx: Context) -> bool:
        return self.present(value) is not True


MATCH_SECONDS = 0.1  # per search of one value: customers write the text a `matches:` reads


def bounded_search(pattern: Any) -> Callable[[str], Any]:
    """`pattern.search`, run by the `regex` package (Python's `re` syntax: its version 0) with
    a time limit: a pattern that backtracks catastrophically on a customer's text (`(a+)+$`
    on 30 `a`s and a `b`, `.*x.*y` on a megabyte) fails that one evaluation, never the cycle."""
    compiled = regex.compile(pattern.pattern, regex.VERSION0)

    def search(text: str) -> Any:
        try:
            return compiled.search(text, timeout=MATCH_SECONDS)
        except TimeoutError:
            raise ValueError(f"`matches: {pattern.pattern}` took over {MATCH_SECONDS} s on a "
                             f"value of {len(text):,} characters") from None

    return search


class Matches(FieldTest):
    __slots__ = ("search",)

    def __init__(self, path: str, pattern: Any) -> None:
        super().__init__(path)
        self.search = bounded_search(pattern)

    def check(self, value: Any, ctx: Context) -> bool:
        if value is None:
            return False
        if _is_list(value):
            return any(v is not None and self.search(str(v)) is not None for v in value)
        return self.search(value if isinstance(value, str) else str(value)) is not None

    def source(self, gen: _Generator) -> str:
        v, search = gen.var(), gen.const(self.search)
        text = f"type({v} := {gen.value(self.path)}) is str"
        return f"({search}({v}) is not None if {text} else {gen.check(Matches.check, self, v)})"


class Exists(FieldTest):
    __slots__ = ("wanted",)

    def __init__(self, path: str, wanted: bool) -> None:
        super().__init__(path)
        self.wanted = wanted

    def check(self, value: Any, ctx: Context) -> bool:
        return (value is not None) is self.wanted

    def source(self, gen: _Generator) -> str:
        if not isinstance(self.wanted, bool):
            return gen.call(self)
        return f"({gen.value(self.path)} is {'not ' if self.wanted else ''}None)"


class Compare(FieldTest):
    """gt/gte/lt/lte over numbers, dates or instants; mixed kinds and null are false."""

    __slots__ = ("bound", "kind", "op")

    def __init__(self, path: str, op: str, bound: Any) -> None:
        super().__init__(path)
        self.op = op
        self.bound = bound
        if _is_number(bound):
            self.kind = "number"
        elif type(bound) is date:
            self.kind = "date"
        elif isinstance(bound, datetime):
            self.kind = "instant"
        else:
            raise ValueError(f"{op} compares with a number, a date or a datetime, not {bound!r}")

    def check(self, value: Any, ctx: Context) -> bool:
        if value is None:
            return False
        if self.kind == "number":
            return _is_number(value) and _ordered(self.op, value, self.bound)
        if self.kind == "date" and not isinstance(value, datetime):
            day = value if isinstance(value, date) else None
            if isinstance(value, str) and len(value) == 10:
                day = parse_date(value)
            if day is not None:
                return _ordered(self.op, day, self.bound)
        left = ctx.instant(self.path)
        right = as_instant(self.bound, ctx.tz, ctx.tz)
        return left is not None and right is not None and _ordered(self.op, left, right)

    def source(self, gen: _Generator) -> str:
        if self.kind != "number":
            return gen.call(self)
        v, bound = gen.var(), gen.const(self.bound)
        number = f"type({v} := {gen.value(self.path)}) in _NUMBERS"
        fallback = gen.check(Compare.check, self, v)
        return f"({v} {_OPERATORS[self.op]} {bound} if {number} else {fallback})"


_OPERATORS = {"gt": ">", "gte": ">=", "lt": "<", "lte": "<="}


def _ordered(op: str, left: Any, right: Any) -> bool:
    if op == "gt":
        return bool(left > right)
    if op == "gte":
        return bool(left >= right)
    if op == "lt":
        return bool(left < right)
    return bool(left <= right)


class Age(FieldTest):
    """older_than / newer_than: the field's instant plus an offset, compared with now."""

    __slots__ = ("offset", "older")

    def __init__(self, path: str, op: str, offset: Offset) -> None:
        super().__init__(path)
        self.older = op == "older_than"
        self.offset = offset

    def threshold(self, ctx: Context) -> datetime | None:
        start = ctx.instant(self.path)
        return None if start is None else ctx.math.shift(start, self.offset)

    def check(self, value: Any, ctx: Context) -> bool:
        limit = self.threshold(ctx)
        return limit is not None and (ctx.now >= limit) is self.older

    def thresholds(self, ctx: Context, out: list[datetime]) -> None:
        limit = self.threshold(ctx)
        if limit is not None:
            out.append(limit)


class Changed(FieldTest):
    """The value differs from the previous observed version's (false without one)."""

    __slots__ = ("wanted",)

    def __init__(self, path: str, wanted: bool) -> None:
        super().__init__(path)
        self.wanted = wanted

    def test(self, ctx: Context) -> bool:
        changed = ctx.previous is not None and _freeze(ctx.value(self.path)) != _freeze(
            resolve(ctx.previous, self.path)
        )
        return changed is self.wanted

    def fast(self) -> Test:
        return self.test  # needs the previous version: no `check(value)` form

    def explain(self, ctx: Context) -> tuple[bool, Explanation]:
        return self.test(ctx), _with_previous(self.path, ctx)


class Became(Condition):
    """The previous observed version did not satisfy `inner`, this one does."""

    __slots__ = ("inner", "path")

    def __init__(self, path: str, inner: Condition) -> None:
        self.path = path
        self.inner = inner

    def test(self, ctx: Context) -> bool:
        before = ctx.before()
        return before is not None and self.inner.test(ctx) and not self.inner.test(before)

    def explain(self, ctx: Context) -> tuple[bool, Explanation]:
        return self.test(ctx), _with_previous(self.path, ctx)

    def thresholds(self, ctx: Context, out: list[datetime]) -> None:
        self.inner.thresholds(ctx, out)


def _with_previous(path: str, ctx: Context) -> Explanation:
    before = None if ctx.previous is None else resolve(ctx.previous, path)
    return {path: json_safe(ctx.value(path)), f"{path} (previous)": json_safe(before)}


class All(Condition):
    __slots__ = ("children",)

    def __init__(self, children: Sequence[Condition]) -> None:
        self.children = tuple(children)

    def test(self, ctx: Context) -> bool:
        return all(child.test(ctx) for child in self.children)

    def fast(self) -> Test:
        tests = tuple(child.fast() for child in self.children)
        if len(tests) == 2:
            first, second = tests
            return lambda ctx: first(ctx) and second(ctx)

        def test(ctx: Context) -> bool:
            for one in tests:  # noqa: SIM110 - a generator costs more in the hot loop
                if not one(ctx):
                    return False
            return True

        return test

    def explain(self, ctx: Context) -> tuple[bool, Explanation]:
        results = [child.explain(ctx) for child in self.children]
        ok = all(r for r, _ in results)
        return ok, _merge(e for r, e in results if ok or not r)

    def held(self) -> Callable[[Context], Explanation]:
        if all(_plain_explanation(child) for child in self.children):
            return _plain_held(tuple(child.path for child in self.children))  # type: ignore[attr-defined]
        parts = tuple(child.held() for child in self.children)  # all hold: all explain
        return lambda ctx: _merge(part(ctx) for part in parts)

    def source(self, gen: _Generator) -> str:
        return "(" + " and ".join(child.source(gen) for child in self.children) + ")"

    def thresholds(self, ctx: Context, out: list[datetime]) -> None:
        for child in self.children:
            child.thresholds(ctx, out)

    def equalities(self) -> Mapping[str, frozenset[Any]]:
        merged: dict[str, frozenset[Any]] = {}
        for child in self.children:
            for path, values in child.equalities().items():
                merged[path] = merged[path] & values if path in merged else values
        return merged


class AnyOf(Condition):
    __slots__ = ("children",)

    def __init__(self, children: Sequence[Condition]) -> None:
        self.children = tuple(children)

    def test(self, ctx: Context) -> bool:
        return any(child.test(ctx) for child in self.children)

    def fast(self) -> Test:
        tests = tuple(child.fast() for child in self.children)

        def test(ctx: Context) -> bool:
            for one in tests:  # noqa: SIM110 - a generator costs more in the hot loop
                if one(ctx):
                    return True
            return False

        return test

    def explain(self, ctx: Context) -> tuple[bool, Explanation]:
        results = [child.explain(ctx) for child in self.children]
        ok = any(r for r, _ in results)
        return ok, _merge(e for r, e in results if r or not ok)

    def source(self, gen: _Generator) -> str:
        return "(" + " or ".join(child.source(gen) for child in self.children) + ")"

    def thresholds(self, ctx: Context, out: list[datetime]) -> None:
        for child in self.children:
            child.thresholds(ctx, out)


class Not(Condition):
    __slots__ = ("child",)

    def __init__(self, child: Condition) -> None:
        self.child = child

    def test(self, ctx: Context) -> bool:
        return not self.child.test(ctx)

    def fast(self) -> Test:
        inner = self.child.fast()
        return lambda ctx: not inner(ctx)

    def explain(self, ctx: Context) -> tuple[bool, Explanation]:
        ok, found = self.child.explain(ctx)
        return not ok, found

    def source(self, gen: _Generator) -> str:
        return f"(not {self.child.source(gen)})"

    def thresholds(self, ctx: Context, out: list[datetime]) -> None:
        self.child.thresholds(ctx, out)


def _merge(parts: Iterable[Explanation]) -> Explanation:
    merged: Explanation = {}
    for part in parts:
        merged.update(part)
    return merged


# ----------------------------------------------------------------------------- time


def next_change(condition: Condition, ctx: Context) -> datetime | None:
    """The first instant after `ctx.now` at which the answer changes by time alone, or None."""
    found: list[datetime] = []
    condition.thresholds(ctx, found)
    later = sorted(t for t in found if t > ctx.now)
    if not later:
        return None
    current = condition.test(ctx)
    return next((t for t in later if condition.test(ctx.at(t)) is not current), None)


def entered(condition: Condition, ctx: Context, since: datetime) -> datetime:
    """When the condition, true now, started to hold, given that it held at or since `since`
    unless an age test flipped after it (the record version's observed_at)."""
    found: list[datetime] = []
    condition.thresholds(ctx, found)
    for t in sorted((t for t in found if since < t <= ctx.now), reverse=True):
        if not condition.test(ctx.at(t - _US)):
            return t
    return since
