"""A SOQL subset: parse a query, check it against the org's catalog, run it over records.

Covers what syncd and admins' rules send: SELECT of fields and parent relationship paths
(`Account.Name`, `What.Name`) or `COUNT()`, one FROM object, WHERE with AND / OR / NOT and
parentheses (mixing AND and OR without parentheses is an error, as in Salesforce), the
operators `= != <> < > <= >= IN NOT IN LIKE`, typed literals (strings with backslash
escapes, numbers, booleans, null, dates, datetimes, relative date literals such as TODAY and
LAST_N_DAYS:n evaluated in UTC on the sandbox clock), ORDER BY with ASC/DESC and NULLS
FIRST/LAST, LIMIT and OFFSET. Names are case-insensitive; answers use the canonical case.
Errors carry Salesforce's error codes and its "ERROR at Row:r:Column:c" message layout.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, Protocol

from syncd.sandbox.salesforce_schema import (
    ID_TYPES,
    NUMBER_TYPES,
    TEXT_TYPES,
    Catalog,
    FieldDef,
    SfError,
    SObjectDef,
    normalize_id,
    parse_datetime,
)

MAX_OFFSET = 2000
_UNSUPPORTED = frozenset({"GROUP", "HAVING", "WITH", "FOR", "USING", "TYPEOF", "INCLUDES",
                          "EXCLUDES", "ALL", "UPDATE"})
_KEYWORDS = frozenset({"SELECT", "FROM", "WHERE", "AND", "OR", "NOT", "IN", "LIKE", "ORDER",
                       "BY", "ASC", "DESC", "NULLS", "FIRST", "LAST", "LIMIT", "OFFSET", "NULL",
                       "TRUE", "FALSE"}) | _UNSUPPORTED
_CLAUSES = frozenset({"SELECT", "FROM", "WHERE", "ORDER", "LIMIT", "OFFSET", "AND", "OR",
                      "NOT"})
_COMPARISONS = frozenset({"=", "!=", "<>", "<", ">", "<=", ">="})
_FIXED_RANGES = frozenset({"TODAY", "YESTERDAY", "TOMORROW", "LAST_WEEK", "THIS_WEEK",
                           "NEXT_WEEK", "LAST_MONTH", "THIS_MONTH", "NEXT_MONTH", "LAST_YEAR",
                           "THIS_YEAR", "NEXT_YEAR", "LAST_90_DAYS", "NEXT_90_DAYS"})
_N_RANGES = frozenset({"LAST_N_DAYS", "NEXT_N_DAYS", "N_DAYS_AGO"})
_STRING_ESCAPES = {"n": "\n", "r": "\r", "t": "\t", "b": "\b", "f": "\f", '"': '"', "'": "'",
                   "\\": "\\"}


# --- lexer ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Token:
    kind: str  # ident string number date datetime op eof
    text: str
    pos: int
    value: Any = None

    def word(self) -> str | None:
        """The upper-cased keyword this token could be, if it is a bare identifier."""
        return self.text.upper() if self.kind == "ident" and "." not in self.text else None


_TOKEN_RE = re.compile(
    r"""(?P<ws>\s+)
      |(?P<datetime>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,3})?(?:Z|[+-]\d{2}:?\d{2}))
      |(?P<date>\d{4}-\d{2}-\d{2})
      |(?P<number>[+-]?(?:\d+(?:\.\d*)?|\.\d+))
      |(?P<string>'(?:[^'\\]|\\.)*')
      |(?P<ident>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)
      |(?P<op><=|>=|!=|<>|[=<>(),:])""",
    re.VERBOSE | re.DOTALL,
)


def tokenize(text: str) -> list[Token]:
    tokens: list[Token] = []
    pos = 0
    while pos < len(text):
        match = _TOKEN_RE.match(text, pos)
        if match is None:
            ch = text[pos]
            detail = "mismatched character '<EOF>' expecting '''" if ch == "'" else (
                f"unexpected token: '{ch}'")
            raise malformed(text, pos, detail)
        kind = match.lastgroup or ""
        if kind != "ws":
            tokens.append(_token(text, kind, match.group(), pos))
        pos = match.end()
    tokens.append(Token("eof", "<EOF>", len(text)))
    return tokens


def _token(source: str, kind: str, text: str, pos: int) -> Token:
    if kind == "string":
        return Token(kind, text, pos, _unescape(source, text, pos))
    if kind == "number":
        return Token(kind, text, pos, float(text) if "." in text else int(text))
    if kind == "date":
        try:
            return Token(kind, text, pos, date.fromisoformat(text))
        except ValueError:
            raise malformed(source, pos, f"invalid date: {text}") from None
    if kind == "datetime":
        value = parse_datetime(text)
        if value is None:
            raise malformed(source, pos, f"invalid datetime: {text}")
        return Token(kind, text, pos, value)
    return Token(kind, text, pos)


def _unescape(source: str, quoted: str, pos: int) -> tuple[str, re.Pattern[str]]:
    """The string's value and, for LIKE, its pattern (where \\% and \\_ stay literal)."""
    value: list[str] = []
    pattern: list[str] = []
    body = quoted[1:-1]
    i = 0
    while i < len(body):
        ch = body[i]
        if ch == "\\":
            nxt = body[i + 1]
            if nxt in "%_":
                value.append("\\" + nxt)
                pattern.append(re.escape(nxt))
            elif nxt.lower() in _STRING_ESCAPES:
                unescaped = _STRING_ESCAPES[nxt.lower()]
                value.append(unescaped)
                pattern.append(re.escape(unescaped))
            else:
                raise malformed(source, pos, f"Invalid string literal '{body}'. Illegal character "
                                f"sequence '\\{nxt}' in string literal.")
            i += 2
            continue
        value.append(ch)
        pattern.append(".*" if ch == "%" else "." if ch == "_" else re.escape(ch))
        i += 1
    return "".join(value), re.compile("".join(pattern), re.IGNORECASE | re.DOTALL)


# --- errors ---------------------------------------------------------------------------------


def located(text: str, pos: int, detail: str) -> str:
    """Salesforce's layout: the query line, a caret under the culprit, row and column."""
    row = text.count("\n", 0, pos) + 1
    line_start = text.rfind("\n", 0, pos) + 1
    line_end = text.find("\n", pos)
    line = text[line_start : line_end if line_end >= 0 else len(text)]
    column = pos - line_start
    return f"\n{line}\n{' ' * column}^\nERROR at Row:{row}:Column:{column + 1}\n{detail}"


def malformed(text: str, pos: int, detail: str) -> SfError:
    return SfError(400, "MALFORMED_QUERY", located(text, pos, detail))


def _no_column(text: str, pos: int, name: str, entity: str) -> SfError:
    return SfError(400, "INVALID_FIELD", located(text, pos, (
        f"No such column '{name}' on entity '{entity}'. If you are attempting to use a custom "
        "field, be sure to append the '__c' after the custom field name. Please reference your "
        "WSDL or the describe call for the appropriate names.")))


# --- syntax tree ----------------------------------------------------------------------------


@dataclass(frozen=True)
class FieldRef:
    path: tuple[str, ...]
    pos: int


@dataclass(frozen=True)
class Literal:
    kind: str  # string number boolean null date datetime range
    value: Any
    pos: int
    text: str


@dataclass(frozen=True)
class Comparison:
    field: FieldRef
    op: str  # = != < > <= >= LIKE IN NOT IN
    value: Literal | tuple[Literal, ...]


@dataclass(frozen=True)
class Junction:
    op: str  # AND | OR
    items: tuple[Condition, ...]


@dataclass(frozen=True)
class Negation:
    item: Condition


Condition = Comparison | Junction | Negation


@dataclass(frozen=True)
class OrderItem:
    field: FieldRef
    descending: bool
    nulls_first: bool


@dataclass(frozen=True)
class Query:
    text: str
    fields: tuple[FieldRef, ...]  # empty for COUNT()
    count: bool
    sobject: str
    sobject_pos: int
    where: Condition | None
    order_by: tuple[OrderItem, ...]
    limit: int | None
    offset: int | None


# --- parser ---------------------------------------------------------------------------------


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = tokenize(text)
        self.i = 0

    def peek(self, ahead: int = 0) -> Token:
        return self.tokens[min(self.i + ahead, len(self.tokens) - 1)]

    def take(self) -> Token:
        tok = self.peek()
        self.i += 1
        return tok

    def at(self, word: str) -> bool:
        tok = self.peek()
        return tok.word() == word or (tok.kind == "op" and tok.text == word)

    def skip(self, word: str) -> bool:
        """Consume `word` if it comes next."""
        if self.at(word):
            self.i += 1
            return True
        return False

    def expect(self, word: str) -> Token:
        if not self.at(word):
            raise self.unexpected(self.peek())
        return self.take()

    def unexpected(self, tok: Token) -> SfError:
        if tok.kind == "eof":
            return malformed(self.text, tok.pos, "unexpected token: <EOF>")
        note = ""
        if tok.word() in _UNSUPPORTED or tok.word() == "SELECT" or tok.text == "(":
            note = " (not supported by the syncd sandbox)"  # clauses, subqueries, functions
        return malformed(self.text, tok.pos, f"unexpected token: '{tok.text}'{note}")

    def query(self) -> Query:
        self.expect("SELECT")
        fields: tuple[FieldRef, ...] = ()
        count = self.at("COUNT") and self.peek(1).text == "("
        if count:
            self.i += 2
            self.expect(")")
        else:
            fields = self.comma_list(self.field)
        self.expect("FROM")
        obj = self.name(_CLAUSES)  # "Group" is an object here, not GROUP BY
        where = self.condition() if self.skip("WHERE") else None
        order: tuple[OrderItem, ...] = ()
        if self.skip("ORDER"):
            self.expect("BY")
            order = self.comma_list(self.order_item)
        limit = self.integer() if self.skip("LIMIT") else None
        offset = self.integer() if self.skip("OFFSET") else None
        if self.peek().kind != "eof":
            raise self.unexpected(self.peek())
        return Query(self.text, fields, count, obj.text, obj.pos, where, order, limit, offset)

    def comma_list(self, item: Callable[[], Any]) -> tuple[Any, ...]:
        items = [item()]
        while self.skip(","):
            items.append(item())
        return tuple(items)

    def name(self, reserved: frozenset[str] = _KEYWORDS) -> Token:
        tok = self.peek()
        if tok.kind != "ident" or tok.word() in reserved:
            raise self.unexpected(tok)
        return self.take()

    def field(self) -> FieldRef:
        tok = self.name()
        return FieldRef(tuple(tok.text.split(".")), tok.pos)

    def integer(self) -> int:
        tok = self.take()
        if tok.kind != "number" or not isinstance(tok.value, int) or tok.value < 0:
            raise self.unexpected(tok)
        return tok.value

    def order_item(self) -> OrderItem:
        ref = self.field()
        descending = False
        if self.at("ASC") or self.at("DESC"):
            descending = self.take().word() == "DESC"
        nulls_first = not descending
        if self.skip("NULLS"):
            if not (self.at("FIRST") or self.at("LAST")):
                raise self.unexpected(self.peek())
            nulls_first = self.take().word() == "FIRST"
        return OrderItem(ref, descending, nulls_first)

    def condition(self) -> Condition:
        first = self.term()
        if not (self.at("AND") or self.at("OR")):
            return first
        op = self.take().word() or ""
        items = [first, self.term()]
        while self.skip(op):
            items.append(self.term())
        if self.at("AND") or self.at("OR"):  # SOQL needs parentheses to mix AND and OR
            raise self.unexpected(self.peek())
        return Junction(op, tuple(items))

    def term(self) -> Condition:
        if self.skip("NOT"):
            return Negation(self.term())
        if self.skip("("):
            inner = self.condition()
            self.expect(")")
            return inner
        return self.comparison()

    def comparison(self) -> Comparison:
        ref = self.field()
        tok = self.peek()
        if self.at("NOT") or self.at("IN"):
            op = "NOT IN" if self.skip("NOT") else "IN"
            self.expect("IN")
            self.expect("(")
            values = self.comma_list(self.value)
            self.expect(")")
            return Comparison(ref, op, values)
        if self.skip("LIKE"):
            return Comparison(ref, "LIKE", self.value())
        if tok.kind == "op" and tok.text in _COMPARISONS:
            self.take()
            return Comparison(ref, "!=" if tok.text == "<>" else tok.text, self.value())
        raise self.unexpected(tok)

    def value(self) -> Literal:
        tok = self.take()
        word = tok.word()
        if tok.kind in ("string", "number", "date", "datetime"):
            return Literal(tok.kind, tok.value, tok.pos, tok.text)
        if word in ("TRUE", "FALSE"):
            return Literal("boolean", word == "TRUE", tok.pos, tok.text)
        if word == "NULL":
            return Literal("null", None, tok.pos, tok.text)
        if word in _FIXED_RANGES:
            return Literal("range", (word, 0), tok.pos, tok.text)
        if word in _N_RANGES:
            self.expect(":")
            amount = self.integer()
            return Literal("range", (word, amount), tok.pos, f"{tok.text}:{amount}")
        raise self.unexpected(tok)


def parse(text: str) -> Query:
    """The syntax tree of a SOQL query; raises SfError(MALFORMED_QUERY) pointing at the token."""
    return _Parser(text).query()


# --- date literals --------------------------------------------------------------------------


def date_range(name: str, n: int, today: date) -> tuple[date, date]:
    """[start, end) days of a relative date literal; weeks start on Sunday (en_US), UTC."""
    day = timedelta(days=1)
    sunday = today - timedelta(days=(today.weekday() + 1) % 7)
    month = today.replace(day=1)
    ranges: dict[str, Callable[[], tuple[date, date]]] = {
        "TODAY": lambda: (today, today + day),
        "YESTERDAY": lambda: (today - day, today),
        "TOMORROW": lambda: (today + day, today + 2 * day),
        "THIS_WEEK": lambda: (sunday, sunday + 7 * day),
        "LAST_WEEK": lambda: (sunday - 7 * day, sunday),
        "NEXT_WEEK": lambda: (sunday + 7 * day, sunday + 14 * day),
        "THIS_MONTH": lambda: (month, _add_months(month, 1)),
        "LAST_MONTH": lambda: (_add_months(month, -1), month),
        "NEXT_MONTH": lambda: (_add_months(month, 1), _add_months(month, 2)),
        "THIS_YEAR": lambda: (date(today.year, 1, 1), date(today.year + 1, 1, 1)),
        "LAST_YEAR": lambda: (date(today.year - 1, 1, 1), date(today.year, 1, 1)),
        "NEXT_YEAR": lambda: (date(today.year + 1, 1, 1), date(today.year + 2, 1, 1)),
        "LAST_90_DAYS": lambda: (today - 90 * day, today + day),
        "NEXT_90_DAYS": lambda: (today + day, today + 91 * day),
        # LAST_N_DAYS includes today; NEXT_N_DAYS starts tomorrow (SOQL reference).
        "LAST_N_DAYS": lambda: (today - n * day, today + day),
        "NEXT_N_DAYS": lambda: (today + day, today + (n + 1) * day),
        "N_DAYS_AGO": lambda: (today - n * day, today - (n - 1) * day),
    }
    return ranges[name]()


def _add_months(first: date, months: int) -> date:
    index = first.year * 12 + first.month - 1 + months
    year, month = divmod(index, 12)
    return date(year, month + 1, min(first.day, calendar.monthrange(year, month + 1)[1]))


# --- checking and running -------------------------------------------------------------------


class Source(Protocol):
    """The records a query reads: rows of one sObject and any record by id."""

    def scan(self, sobject: str, include_deleted: bool) -> Iterable[Mapping[str, Any]]: ...

    def lookup(self, record_id: str) -> tuple[SObjectDef, Mapping[str, Any]] | None: ...


Row = Mapping[str, Any]
Getter = Callable[[Row], Any]


@dataclass(frozen=True)
class _Path:
    """A resolved field path: relationship hops, then a field of the last object."""

    names: tuple[str, ...]  # canonical: ("Account", "Name")
    hops: tuple[FieldDef, ...]
    field: FieldDef


@dataclass
class Result:
    total_size: int
    records: list[dict[str, Any]]


class _Compiled:
    def __init__(self, query: Query, catalog: Catalog, source: Source, now: datetime) -> None:
        self.query = query
        self.catalog = catalog
        self.source = source
        self.today = now.astimezone(UTC).date()
        obj = catalog.get(query.sobject)
        if obj is None:
            raise SfError(400, "INVALID_TYPE", located(query.text, query.sobject_pos, (
                f"sObject type '{query.sobject}' is not supported. If you are attempting to use "
                "a custom object, be sure to append the '__c' after the entity name. Please "
                "reference your WSDL or the describe call for the appropriate names.")))
        self.sobject = obj
        self.select = [self.resolve(ref) for ref in query.fields]
        self._no_duplicates()
        self.where = self.condition(query.where) if query.where else None
        self.order = [(self.sort_path(item.field), item) for item in query.order_by]
        if query.offset is not None and query.offset > MAX_OFFSET:
            raise SfError(400, "NUMBER_OUTSIDE_VALID_RANGE",
                          f"Maximum SOQL offset allowed is {MAX_OFFSET}")

    def _no_duplicates(self) -> None:
        seen: set[tuple[str, ...]] = set()
        for ref, path in zip(self.query.fields, self.select, strict=True):
            key = tuple(n.lower() for n in path.names)
            if key in seen:
                raise malformed(self.query.text, ref.pos,
                                f"duplicate field selected: {'.'.join(path.names)}")
            seen.add(key)

    def resolve(self, ref: FieldRef) -> _Path:
        obj = self.sobject
        hops: list[FieldDef] = []
        names: list[str] = []
        for part in ref.path[:-1]:
            rel = obj.relationship(part)
            target = self.catalog.target(rel) if rel else None
            if rel is None or target is None:
                raise SfError(400, "INVALID_FIELD", located(self.query.text, ref.pos, (
                    f"Didn't understand relationship '{part}' in field path. If you are "
                    "attempting to use a custom relationship, be sure to append the '__r' after "
                    "the custom relationship name. Please reference your WSDL or the describe "
                    "call for the appropriate names.")))
            hops.append(rel)
            names.append(rel.relationship_name or "")
            obj = target
        final = obj.field(ref.path[-1])
        if final is None:
            raise _no_column(self.query.text, ref.pos, ref.path[-1], obj.name)
        return _Path((*names, final.name), tuple(hops), final)

    def sort_path(self, ref: FieldRef) -> _Path:
        path = self.resolve(ref)
        if not path.field.filterable:
            raise SfError(400, "INVALID_FIELD", located(self.query.text, ref.pos, (
                f"field '{path.field.name}' can not be sorted in a query call")))
        return path

    # -- values

    def getter(self, path: _Path) -> Getter:
        """Reads the path's stored value from a row, following parents through the source."""
        hops, final = path.hops, path.field

        def get(row: Row) -> Any:
            current: Row | None = row
            obj = self.sobject
            for hop in hops:
                found = self.source.lookup(current.get(hop.name) or "") if current else None
                if found is None:
                    return None
                obj, current = found
            if final.name == "Type" and hops and hops[-1].polymorphic and current:
                return _parent_type(obj, current)
            return current.get(final.name) if current else None

        return get

    # -- WHERE

    def condition(self, cond: Condition) -> Callable[[Row], bool]:
        if isinstance(cond, Negation):
            inner = self.condition(cond.item)
            return lambda row: not inner(row)
        if isinstance(cond, Junction):
            parts = [self.condition(item) for item in cond.items]
            if cond.op == "AND":
                return lambda row: all(p(row) for p in parts)
            return lambda row: any(p(row) for p in parts)
        return self.comparison(cond)

    def comparison(self, cmp: Comparison) -> Callable[[Row], bool]:
        path = self.resolve(cmp.field)
        if not path.field.filterable:
            raise SfError(400, "INVALID_FIELD", located(self.query.text, cmp.field.pos, (
                f"field '{path.field.name}' can not be filtered in query call")))
        get = self.getter(path)
        ftype = path.field.type
        if cmp.op in ("IN", "NOT IN"):
            assert isinstance(cmp.value, tuple)
            tests = [self.test(path, "=", lit) for lit in cmp.value]
            negate = cmp.op == "NOT IN"
            return lambda row: any(t(_key(ftype, get(row))) for t in tests) != negate
        assert isinstance(cmp.value, Literal)
        test = self.test(path, cmp.op, cmp.value)
        return lambda row: test(_key(ftype, get(row)))

    def test(self, path: _Path, op: str, lit: Literal) -> Callable[[Any], bool]:
        """A predicate over the field's comparable key, after type-checking the literal."""
        ftype = path.field.type
        if op == "LIKE":
            if ftype not in TEXT_TYPES or lit.kind != "string":
                raise self.bad_operator(lit, f"invalid operator on {ftype} field")
            pattern: re.Pattern[str] = lit.value[1]
            return lambda key: key is not None and pattern.fullmatch(key) is not None
        if lit.kind == "null":
            if op not in ("=", "!="):
                raise self.bad_operator(lit, "invalid operator on null value")
            return (lambda key: key is None) if op == "=" else (lambda key: key is not None)
        if ftype == "boolean" and op not in ("=", "!="):
            raise self.bad_operator(lit, "invalid operator on boolean field")
        if lit.kind == "range" and ftype in ("date", "datetime"):
            return _range_test(op, self.range_keys(ftype, lit))
        return _scalar_test(op, self.literal_key(path.field, lit))

    def range_keys(self, ftype: str, lit: Literal) -> tuple[Any, Any]:
        start, end = date_range(*lit.value, self.today)
        if ftype == "date":
            return start.isoformat(), end.isoformat()
        return _midnight(start), _midnight(end)

    def literal_key(self, fdef: FieldDef, lit: Literal) -> Any:
        ftype = fdef.type
        if ftype in TEXT_TYPES and lit.kind == "string":
            return lit.value[0].casefold()
        if ftype in ID_TYPES and lit.kind == "string":
            canonical = normalize_id(lit.value[0])
            if canonical is None:
                raise self.bad_operator(lit, f"invalid ID field: {lit.value[0]}")
            return canonical
        if ftype == "boolean" and lit.kind == "boolean":
            return lit.value
        if ftype in NUMBER_TYPES and lit.kind == "number":
            return float(lit.value)
        if ftype == "date" and lit.kind == "date":
            return lit.value.isoformat()
        if ftype == "datetime" and lit.kind == "datetime":
            return lit.value
        expected = {"date": "date", "datetime": "dateTime", "boolean": "boolean"}.get(ftype)
        if expected is None and ftype in NUMBER_TYPES:
            expected = "number"
        quoting = "should not be enclosed in quotes" if expected else "should be enclosed in quotes"
        raise self.bad_operator(lit, f"value of filter criterion for field '{fdef.name}' must be "
                                f"of type {expected or 'string'} and {quoting}")

    def bad_operator(self, lit: Literal, detail: str) -> SfError:
        return SfError(400, "INVALID_QUERY_FILTER_OPERATOR", located(self.query.text, lit.pos,
                                                                     detail))

    # -- running

    def run(self, include_deleted: bool, url_prefix: str) -> Result:
        rows = [r for r in self.source.scan(self.sobject.name, include_deleted)
                if self.where is None or self.where(r)]
        for path, item in reversed(self.order):
            rows = _sorted(rows, self.getter(path), path.field.type, item)
        start = self.query.offset or 0
        end = None if self.query.limit is None else start + self.query.limit
        rows = rows[start:end]
        if self.query.count:
            return Result(len(rows), [])
        return Result(len(rows), [self.render(row, url_prefix) for row in rows])

    def render(self, row: Row, url_prefix: str) -> dict[str, Any]:
        """The row as Salesforce answers it: attributes, then fields, parents nested."""
        out = _attributes(self.sobject.name, row["Id"], url_prefix)
        for path in self.select:
            self._place(out, row, self.sobject, path, 0, url_prefix)
        return out

    def _place(self, out: dict[str, Any], row: Row, obj: SObjectDef, path: _Path, depth: int,
               url_prefix: str) -> None:
        if depth == len(path.hops):
            polymorphic = depth > 0 and path.hops[-1].polymorphic
            value = _parent_type(obj, row) if polymorphic and path.field.name == "Type" else (
                row.get(path.field.name))
            out[path.names[depth]] = value
            return
        hop = path.hops[depth]
        key = path.names[depth]
        found = self.source.lookup(row.get(hop.name) or "")
        if found is None:
            out[key] = None
            return
        parent_obj, parent = found
        nested = out.get(key)
        if not isinstance(nested, dict):
            nested = out[key] = _attributes(parent_obj.name, parent["Id"], url_prefix)
        self._place(nested, parent, parent_obj, path, depth + 1, url_prefix)


def _parent_type(obj: SObjectDef, row: Row) -> str:
    """`Type` of a polymorphic parent: its sObject name, or Queue for a queue."""
    return "Queue" if obj.name == "Group" and row.get("Type") == "Queue" else obj.name


def _attributes(sobject: str, record_id: str, url_prefix: str) -> dict[str, Any]:
    return {"attributes": {"type": sobject, "url": f"{url_prefix}/sobjects/{sobject}/{record_id}"}}


def _midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def _key(ftype: str, value: Any) -> Any:
    """A stored value as a comparable key: text folds case, datetimes become instants."""
    if value is None:
        return None
    if ftype in TEXT_TYPES:
        return str(value).casefold()
    if ftype == "datetime":
        return parse_datetime(value)
    if ftype in NUMBER_TYPES:
        return float(value)
    return value


def _scalar_test(op: str, lit: Any) -> Callable[[Any], bool]:
    tests: dict[str, Callable[[Any], bool]] = {
        "=": lambda key: key == lit,
        "!=": lambda key: key != lit,  # null != x is true in SOQL
        "<": lambda key: key is not None and key < lit,
        "<=": lambda key: key is not None and key <= lit,
        ">": lambda key: key is not None and key > lit,
        ">=": lambda key: key is not None and key >= lit,
    }
    return tests[op]


def _range_test(op: str, bounds: tuple[Any, Any]) -> Callable[[Any], bool]:
    start, end = bounds
    tests: dict[str, Callable[[Any], bool]] = {
        "=": lambda key: key is not None and start <= key < end,
        "!=": lambda key: key is None or not start <= key < end,
        "<": lambda key: key is not None and key < start,
        "<=": lambda key: key is not None and key < end,
        ">": lambda key: key is not None and key >= end,
        ">=": lambda key: key is not None and key >= start,
    }
    return tests[op]


def _sorted(rows: list[Row], get: Getter, ftype: str, item: OrderItem) -> list[Row]:
    """One stable pass of a multi-key sort; nulls placed independently of the direction."""
    keyed = [(_key(ftype, get(row)), row) for row in rows]
    nulls = [row for key, row in keyed if key is None]
    present = [(key, row) for key, row in keyed if key is not None]
    present.sort(key=lambda pair: pair[0], reverse=item.descending)
    ordered = [row for _, row in present]
    return nulls + ordered if item.nulls_first else ordered + nulls


def run_query(
    text: str,
    catalog: Catalog,
    source: Source,
    now: datetime,
    *,
    include_deleted: bool,
    url_prefix: str,
) -> Result:
    """Parse, check and run `text`; `url_prefix` is "/services/data/vXX.X" for attributes."""
    compiled = _Compiled(parse(text), catalog, source, now)
    return compiled.run(include_deleted, url_prefix)
