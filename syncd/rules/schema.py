"""The rule language as validated, immutable pydantic models: what the engine consumes.

Design decisions (docs/rules.md is the admin-facing reference):

- Models are the *parsed* language, not the raw YAML: offsets are `durations.Offset`, regexes
  are compiled `re.Pattern`s, weekdays and times of day are parsed, every text an action writes
  is a `Text` (a `str` subclass marking "this is a Jinja2 template", syntax-checked here). The
  engine never parses strings again, and `params()` of an action keeps `Text` so the engine
  renders exactly the template fields (`templates.render_tree`), never a regex or a field name.
- Conditions are a tree: `FieldCondition(field, op, value)` | `AllOf(all)` | `AnyOf(any)` |
  `Not(not_)`. A YAML mapping with several keys becomes `AllOf`; a bare scalar is `eq`, a bare
  list is `in`; `{gte: 1, lt: 5}` becomes two `FieldCondition`s under `AllOf`. `value` by op:
  eq/ne/contains/lacks: a scalar; in/not_in: a tuple; matches: `re.Pattern`; exists/changed:
  bool; gt/gte/lt/lte: number, date or datetime (ISO strings are parsed); older_than/newer_than:
  `Offset`; became: a `Condition` over the same field (true on the first observed version that
  matches after one that did not). A value `"{{ vars.NAME }}"` reaches these models already
  replaced by the var's value (the loader runs `vars.substitute_vars` on the YAML first).
- Actions are one model per action with a `kind` equal to the YAML key and the intent's
  `action` name (`{notify: {...}}` -> `Notify(kind="notify", ...)`). The YAML surface form and
  the model form both validate, so tests may build `{"kind": "tag", "tags": [...]}` directly.
- Parse errors that happen below a field (inside a condition, an action wrapper) raise
  `LocatedError`, a `ValueError` carrying sub-paths, so the loader can point at the exact YAML
  node and report every problem of a condition at once.
- Cross-field invariants that the engine relies on (`do` xor `steps`, step ids unique,
  `defer.from_step` names a step, timeline keys only on timeline rules) are enforced here;
  checks needing other files or record-kind knowledge live in `lint.py`.
"""

from __future__ import annotations

import re
import typing
from collections.abc import Callable, Iterator
from datetime import date, datetime, time, timedelta
from typing import Annotated, Any, ClassVar, Literal, TypeAlias

import pydantic
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    PlainValidator,
    PositiveInt,
    WithJsonSchema,
    model_validator,
)

from syncd import durations
from syncd.durations import DurationError, Offset
from syncd.model import LIMIT_KINDS
from syncd.rules.diagnostics import did_you_mean
from syncd.rules.templates import PathText, RecipientText, Text
from syncd.vendors.registry import RECORD_KINDS

Path_ = tuple[str | int, ...]
RULE_ID = r"^[a-z0-9][a-z0-9_-]*$"
LINK = "record"  # `set` / `comment`: the key naming another record to write to (a template)
VAR_REFERENCE = re.compile(r"\{\{\s*vars\.([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")  # syncd.rules.vars
DEFS = "#/$defs/"


class LocatedError(ValueError):
    """Problems found below the field being validated: `(sub-path, message, at_key)` each.

    `at_key` points the diagnostic at the mapping key itself (an unknown key) rather than at its
    value.
    """

    def __init__(self, problems: list[tuple[Path_, str, bool]]) -> None:
        super().__init__("; ".join(message for _, message, _ in problems))
        self.problems = problems


# --- scalar types -------------------------------------------------------------------------


def _parsed(parse: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """Wrap a `durations` parser so its error becomes a ValueError pydantic locates."""

    def validate(value: Any) -> Any:
        try:
            return parse(value)
        except DurationError as exc:
            raise ValueError(str(exc)) from None

    return validate


def _string(description: str, **extra: Any) -> WithJsonSchema:
    return WithJsonSchema({"type": "string", "description": description, **extra})


OffsetField = Annotated[
    Offset,
    PlainValidator(_parsed(durations.parse_offset)),
    _string(
        "Signed offset, one unit: 90m, 24h, 2d, 6w, -2w, +100d, 6 months, 1 business_hour, "
        "90 business_minutes, 3 business_days",
        examples=["1h", "3 business_days", "-2w"],
    ),
]
TimeOfDay = Annotated[
    time,
    PlainValidator(_parsed(durations.parse_time_of_day)),
    _string("Local time of day HH:MM", pattern=r"^\d{1,2}:\d{2}$"),
]
Period = Annotated[
    Offset,
    PlainValidator(_parsed(durations.parse_period)),
    _string("Repeat period: 'every 6 months', 'every 1w'", examples=["every 6 months"]),
]
Weekdays = Annotated[
    frozenset[int],
    PlainValidator(_parsed(durations.parse_weekdays)),
    WithJsonSchema(
        {
            "description": "Weekdays: [MON, WED, FRI], 'mon-fri' (Monday is 0 once parsed)",
            "anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}],
        }
    ),
]


def _regex(value: Any) -> re.Pattern[str]:
    if not isinstance(value, str):
        raise ValueError(f"expected a regular expression string, got {value!r}")
    try:
        return re.compile(value)
    except re.error as exc:
        raise ValueError(f"invalid regular expression {value!r}: {exc}") from None


Regex = Annotated[re.Pattern[str], PlainValidator(_regex), _string("Python regular expression")]
Scalar: TypeAlias = str | int | float | bool | date | datetime | None
_LATE_REF = "x-syncd-ref"


def _ref(name: str) -> dict[str, Any]:
    """A reference to a hand-written definition, resolved by `json_schema()` (pydantic insists
    on resolving every `$ref` it meets against its own definitions)."""
    return {_LATE_REF: name}


def _resolve_late_refs(node: Any) -> Any:
    if isinstance(node, dict):
        if _LATE_REF in node:
            rest = {k: v for k, v in node.items() if k != _LATE_REF}
            return {"$ref": DEFS + node[_LATE_REF], **rest}
        return {k: _resolve_late_refs(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_resolve_late_refs(v) for v in node]
    return node


class Node(BaseModel):
    """Base of every model: immutable, unknown keys refused, YAML aliases (`from`) accepted."""

    model_config = ConfigDict(
        extra="forbid", frozen=True, populate_by_name=True, arbitrary_types_allowed=True
    )


# --- conditions ---------------------------------------------------------------------------

Op = Literal[
    "eq", "ne", "in", "not_in", "contains", "lacks", "matches", "exists",
    "gt", "gte", "lt", "lte", "older_than", "newer_than", "changed", "became",
]  # fmt: skip
OPS: tuple[str, ...] = Op.__args__  # type: ignore[attr-defined]


class FieldCondition(Node):
    """One operator applied to one field (dotted path into nested fields)."""

    field: str
    op: Op
    value: Any


class AllOf(Node):
    all: tuple[Condition, ...]


class AnyOf(Node):
    any: tuple[Condition, ...]


class Not(Node):
    not_: Condition = Field(alias="not")


Condition: TypeAlias = FieldCondition | AllOf | AnyOf | Not
for _model in (AllOf, AnyOf, Not):
    _model.model_rebuild()


class _ConditionParser:
    """Turns the YAML condition shape into the tree, collecting every problem on the way."""

    def __init__(self) -> None:
        self.problems: list[tuple[Path_, str, bool]] = []

    def fail(self, path: Path_, message: str, at_key: bool = False) -> None:
        self.problems.append((path, message, at_key))

    def condition(self, raw: Any, path: Path_) -> Condition | None:
        if not isinstance(raw, dict) or not raw:
            self.fail(path, f"a condition is a non-empty mapping of field: test, got {raw!r}")
            return None
        parts = [self.entry(str(key), value, (*path, key)) for key, value in raw.items()]
        return None if None in parts else _all(parts)  # type: ignore[arg-type]

    def entry(self, key: str, value: Any, path: Path_) -> Condition | None:
        if key == "not":
            inner = self.condition(value, path)
            return Not(not_=inner) if inner is not None else None
        if key in ("all", "any"):
            if not isinstance(value, list) or not value:
                self.fail(path, f"'{key}' takes a non-empty list of conditions")
                return None
            items = [self.condition(item, (*path, i)) for i, item in enumerate(value)]
            if None in items:
                return None
            return AllOf(all=tuple(items)) if key == "all" else AnyOf(any=tuple(items))
        return self.predicate(key, value, path, nested=False)

    def predicate(self, field: str, raw: Any, path: Path_, nested: bool) -> Condition | None:
        """`raw` tests `field`: a scalar (eq), a list (in) or a mapping of operators."""
        if isinstance(raw, list):
            return self.test(field, "in", raw, path)
        if not isinstance(raw, dict):
            return self.test(field, "eq", raw, path)
        if not raw:
            self.fail(path, f"empty test for '{field}'")
            return None
        parts = []
        for op, value in raw.items():
            if op not in OPS or (nested and op in ("became", "changed")):
                allowed = [o for o in OPS if not nested or o not in ("became", "changed")]
                self.fail((*path, op), f"unknown operator {op!r}{did_you_mean(str(op), allowed)}",
                          at_key=True)  # fmt: skip
                parts.append(None)
            else:
                parts.append(self.test(field, op, value, (*path, op)))
        return None if None in parts else _all(parts)  # type: ignore[arg-type]

    def test(self, field: str, op: str, value: Any, path: Path_) -> FieldCondition | None:
        try:
            parsed = self.operand(field, op, value, path)
        except ValueError as exc:
            self.fail(path, str(exc))
            return None
        return None if parsed is _INVALID else FieldCondition(field=field, op=op, value=parsed)

    def operand(self, field: str, op: str, value: Any, path: Path_) -> Any:
        if op in ("eq", "ne", "contains", "lacks"):
            return _scalar(op, value)
        if op in ("in", "not_in"):
            if not isinstance(value, list) or not value:
                raise ValueError(f"'{op}' takes a non-empty list")
            return tuple(_scalar(op, v) for v in value)
        if op == "matches":
            return _regex(value)
        if op in ("exists", "changed"):
            if not isinstance(value, bool):
                raise ValueError(f"'{op}' takes true or false, got {value!r}")
            return value
        if op in ("gt", "gte", "lt", "lte"):
            return _comparable(op, value)
        if op in ("older_than", "newer_than"):
            return _parsed(durations.parse_offset)(value)
        inner = self.predicate(field, value, path, nested=True)  # became
        return _INVALID if inner is None else inner


_INVALID = object()


def _all(parts: list[Condition]) -> Condition:
    return parts[0] if len(parts) == 1 else AllOf(all=tuple(parts))


def _scalar(op: str, value: Any) -> Scalar:
    if isinstance(value, (list, dict)):
        raise ValueError(f"'{op}' takes a single value, got {value!r}")
    return value


def _comparable(op: str, value: Any) -> int | float | date | datetime:
    if isinstance(value, (int, float, date)) and not isinstance(value, bool):
        return value
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            pass
    raise ValueError(f"'{op}' compares with a number, date or datetime, got {value!r}")


def parse_condition(raw: Any) -> Condition:
    """The condition tree for a YAML condition; raises LocatedError listing every problem."""
    if isinstance(raw, (FieldCondition, AllOf, AnyOf, Not)):
        return raw
    parser = _ConditionParser()
    result = parser.condition(raw, ())
    if parser.problems or result is None:
        raise LocatedError(parser.problems)
    return result


ConditionField = Annotated[
    Condition, PlainValidator(parse_condition), WithJsonSchema(_ref("Condition"))
]

# --- actions ------------------------------------------------------------------------------

Recipient = Annotated[
    RecipientText,
    Field(
        description="group:Name, user:email, role:Name, assignee, requester, owner, an address, "
        "or a template"
    ),
]


class Deliver(Node):
    """When an action may go out: an instant rule's mail planned at 3 a.m. waits for the next
    open minute of the calendar."""

    within: str = Field(description="Calendar whose open hours the action waits for")


class Action(Node):
    """Base of the action models; `kind` is the YAML key and the intent's action name."""

    kind: str
    deliver: Deliver | None = Field(
        None, description="Delivery window: due outside the calendar's hours, it waits"
    )
    body_key: ClassVar[str | None] = None  # actions whose YAML body is a list/mapping, not keys

    def params(self) -> dict[str, Any]:
        """The intent params before rendering: set fields, `Text` kept for the renderer."""
        return {
            name: _plain(value)
            for name, value in self
            if name not in ("kind", "deliver") and value is not None
        }

    @property
    def link(self) -> Text | None:
        """The template naming the other record the action writes to (`record:`), if any."""
        return getattr(self, LINK, None)

    @classmethod
    def body_schema(cls) -> dict[str, Any]:
        """JSON Schema of the YAML body under the action's key."""
        schema = cls.model_json_schema(ref_template=DEFS + "{model}")
        if cls.body_key:
            body = schema["properties"][cls.body_key]
            if LINK in cls.model_fields:  # or the long form {record: ..., <body_key>: ...}
                linked = {
                    "type": "object",
                    "properties": {LINK: schema["properties"][LINK], cls.body_key: body},
                    "required": [LINK, cls.body_key],
                    "additionalProperties": False,
                }
                body = {"anyOf": [body, linked]}
            return {**body, "$defs": schema.get("$defs", {})}
        schema["properties"].pop("kind")
        schema["required"] = [r for r in schema.get("required", []) if r != "kind"]
        return schema


def _plain(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return {name: _plain(v) for name, v in value if v is not None}
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


class Tag(Action):
    """Add tags (never replaces the tag list)."""

    kind: Literal["tag"] = "tag"
    body_key = "tags"
    tags: list[Text] = Field(min_length=1, description="Tags to add")


class Untag(Action):
    """Remove tags."""

    kind: Literal["untag"] = "untag"
    body_key = "tags"
    tags: list[Text] = Field(min_length=1, description="Tags to remove")


def _value(raw: Any) -> Any:
    """A value to set or a rule var: strings are templates (one clear error, no union noise)."""
    if isinstance(raw, str):
        return Text._validate(raw)
    if raw is None or isinstance(raw, (bool, int, float, date)):
        return raw
    if isinstance(raw, list) and all(isinstance(v, str) for v in raw):
        return [Text._validate(v) for v in raw]
    raise ValueError(f"expected a text, number, boolean, date or list of texts, got {raw!r}")


Value = Annotated[
    Any,
    PlainValidator(_value),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": ["string", "number", "boolean", "null"]},
                {"type": "array", "items": {"type": "string"}},
            ]
        }
    ),
]


def _link_id(raw: Any) -> Any:
    """A linked record's id written as a YAML number is read as its text (then a template)."""
    return str(raw) if isinstance(raw, int) and not isinstance(raw, bool) else raw


LinkedRecord = Annotated[
    Text,
    BeforeValidator(_link_id),
    WithJsonSchema(
        {
            "type": ["string", "integer"],
            "description": "Id of another Zendesk ticket to write to instead of the rule's "
            "record (a template, e.g. '{{ ticket.custom.customer_ticket }}')",
        }
    ),
]


class SetFields(Action):
    """Set fields: {status: solved}; on another ticket: {record: "<id>", fields: {...}}."""

    kind: Literal["set"] = "set"
    body_key = "fields"
    fields: dict[str, Value] = Field(min_length=1, description="field: value (templates)")
    record: LinkedRecord | None = None


class AssignMapping(Node):
    """Assignee looked up from a field's value."""

    field: str = Field(description="Record field whose value is looked up, e.g. custom.account")
    table: dict[str, Text] = Field(min_length=1, description="value: user (email or id)")
    default: Text | None = Field(None, description="User when the value is not in the table")


Strategy = Literal["fixed", "round_robin", "least_loaded", "account_owner", "mapping"]


class Assign(Action):
    """Assign to a user, or to a group with a strategy (owner on Salesforce)."""

    kind: Literal["assign"] = "assign"
    user: Text | None = Field(None, description="Email or id")
    group: Text | None = Field(None, description="Group name")
    strategy: Strategy = Field("fixed", description="How a group member is chosen")
    mapping: AssignMapping | None = None
    skip_away: bool = Field(True, description="Skip people marked away")

    @model_validator(mode="after")
    def _strategy_has_its_inputs(self) -> Assign:
        if (self.strategy == "mapping") != (self.mapping is not None):
            raise ValueError("'mapping' is required with, and only with, strategy: mapping")
        if self.strategy == "fixed" and not (self.user or self.group):
            raise ValueError("assign needs 'user' or 'group'")
        if self.strategy in ("round_robin", "least_loaded") and not self.group:
            raise ValueError(f"strategy {self.strategy} needs 'group'")
        return self


class Unassign(Action):
    """Remove the assignee."""

    kind: Literal["unassign"] = "unassign"
    keep_group: bool = Field(False, description="Keep the group, clear only the person")


class Comment(Action):
    """Add a comment (private unless public: true), to another ticket with `record`."""

    kind: Literal["comment"] = "comment"
    body: Text
    public: bool = False
    record: LinkedRecord | None = None


class Notify(Action):
    """Send a mail (Graph sendMail from the service mailbox) or a private Zendesk note."""

    kind: Literal["notify"] = "notify"
    to: list[Recipient] = Field(min_length=1)
    cc: list[Recipient] = Field(default_factory=list)
    subject: Text | None = Field(None, description="Overrides a named template's Subject line")
    body: Text | None = None
    template: Text | None = Field(None, description="Named template: templates/<name>.j2")
    via: Literal["mail", "note"] = "mail"

    @model_validator(mode="after")
    def _one_body(self) -> Notify:
        if (self.body is None) == (self.template is None):
            raise ValueError("notify needs exactly one of 'body' and 'template'")
        return self


class CreateTask(Action):
    """Create a Salesforce task related to the record."""

    kind: Literal["create_task"] = "create_task"
    subject: Text
    owner: Text | None = Field(None, description="role:Name, owner, or a user")
    due: OffsetField | None = Field(None, description="Due date, offset from the anchor")
    description: Text | None = None
    priority: Text | None = None
    status: Text | None = None


class CreateEvent(Action):
    """Create a Salesforce event related to the record."""

    kind: Literal["create_event"] = "create_event"
    subject: Text
    owner: Text | None = None
    start: OffsetField = Field(description="Start, offset from the anchor")
    duration: OffsetField = Field(default_factory=lambda: durations.parse_offset("1h"))
    description: Text | None = None


class CreateTicket(Action):
    """Open a Zendesk ticket."""

    kind: Literal["create_ticket"] = "create_ticket"
    subject: Text
    body: Text
    requester: Text | None = None
    group: Text | None = None
    priority: Text | None = None
    tags: list[Text] = Field(default_factory=list)


class EnsureFolder(Action):
    """Create a SharePoint folder (and subfolders) unless it exists."""

    kind: Literal["ensure_folder"] = "ensure_folder"
    path: PathText
    subfolders: list[PathText] = Field(default_factory=list)


class FileTranscript(Action):
    """Attach a file to the ticket its name refers to, else file it in a folder."""

    kind: Literal["file_transcript"] = "file_transcript"
    ticket_from: Regex = Field(description="Regex over name/topic; group 1 is the ticket id")
    organization: Text | None = Field(
        None, description="The client the file names (a template; empty: any): a ticket of "
        "another organisation is not a match")
    else_folder: PathText | None = None
    else_notify: list[Recipient] = Field(default_factory=list)


def _where(raw: Any) -> dict[str, Any]:
    """A condition kept as its YAML mapping (an intent param), checked like any other."""
    parse_condition(raw)
    return dict(raw)


WhereField = Annotated[dict[str, Any], PlainValidator(_where), WithJsonSchema(_ref("Condition"))]


class DispatchQueue(Node):
    """The queue: a group's unassigned new/open tickets, narrowed by a condition."""

    group: Text
    where: WhereField | None = Field(
        None, description="Only the tickets this condition holds for (tested as they stand)")


class Dispatch(Action):
    """Hand queued tickets to available agents with spare capacity."""

    kind: Literal["dispatch"] = "dispatch"
    queue: Text | DispatchQueue = Field(description="A group name, or {group, where}")
    order: list[Literal["priority", "age"]] = Field(default_factory=lambda: ["priority", "age"])
    to: Text = Field(description="Group whose available agents receive tickets")
    capacity: PositiveInt = Field(description="Open tickets per agent")
    notify_requester: Text | None = None


AnyAction: TypeAlias = (
    Tag | Untag | SetFields | Assign | Unassign | Comment | Notify | CreateTask | CreateEvent
    | CreateTicket | EnsureFolder | FileTranscript | Dispatch
)
ACTIONS: dict[str, type[Action]] = {
    model.model_fields["kind"].default: model for model in typing.get_args(AnyAction)
}


def _unwrap_action(raw: Any) -> Any:
    """`{notify: {...}}` -> `{"kind": "notify", ...}` so pydantic picks the model by kind."""
    if isinstance(raw, Action) or (isinstance(raw, dict) and "kind" in raw):
        return raw
    if not isinstance(raw, dict) or len(raw) != 1:
        raise ValueError(f"an action is a one-key mapping such as {{tag: [vip]}}, got {raw!r}")
    ((name, body),) = raw.items()
    model = ACTIONS.get(name)
    if model is None:
        raise LocatedError([((name,), f"unknown action {name!r}{did_you_mean(name, ACTIONS)}",
                             True)])  # fmt: skip
    if model.body_key:
        if isinstance(body, dict) and LINK in body and LINK in model.model_fields:
            return {**body, "kind": name}  # the long form: {record: ..., fields: {...}}
        return {"kind": name, model.body_key: body}
    if body is None:
        body = {}
    if not isinstance(body, dict):
        raise LocatedError([((name,), f"'{name}' takes a mapping, got {body!r}", False)])
    return {**body, "kind": name}


ActionField = Annotated[
    Annotated[AnyAction, Field(discriminator="kind")],
    BeforeValidator(_unwrap_action),
    WithJsonSchema(_ref("Action")),
]
Actions = Annotated[list[ActionField], Field(min_length=1)]

# --- rules --------------------------------------------------------------------------------


_FIXED_UNITS = ("minutes", "hours", "days", "weeks")


class CatchUp(Node):
    """What to do with a due instant that passed while the daemon was down."""

    policy: Literal["fire", "skip", "fire_if_within"] = "fire"
    within: timedelta | None = None

    @model_validator(mode="before")
    @classmethod
    def _from_yaml(cls, raw: Any) -> Any:
        if isinstance(raw, str):
            return {"policy": raw}
        if isinstance(raw, dict) and set(raw) == {"fire_if_within"}:
            window = _parsed(durations.parse_offset)(raw["fire_if_within"])
            if window.unit not in _FIXED_UNITS or window.amount <= 0:
                raise ValueError(f"fire_if_within takes a positive wall duration such as 2h, "
                                 f"got {window}")  # fmt: skip
            return {"policy": "fire_if_within", "within": timedelta(**{window.unit: window.amount})}
        return raw


CatchUpField = Annotated[
    CatchUp,
    WithJsonSchema(
        {
            "description": "fire (default) | skip | {fire_if_within: 2h}",
            "anyOf": [
                {"enum": ["fire", "skip"]},
                {
                    "type": "object",
                    "properties": {"fire_if_within": {"type": "string"}},
                    "required": ["fire_if_within"],
                    "additionalProperties": False,
                },
            ],
        }
    ),
]


TIMING_KEYS = ("after", "every", "from", "to", "at", "repeat")


class Timing(Node):
    """When a step is due: at `after` (optionally repeating), or on weekdays `every` between
    `from` and `to`."""

    after: OffsetField | None = None
    every: Weekdays | None = None
    from_: OffsetField | None = Field(None, alias="from", description="Range start (inclusive)")
    to: OffsetField | None = Field(None, description="Range end (exclusive)")
    at: TimeOfDay | None = Field(None, description="Local time of day on the calendar")
    repeat: Period | None = Field(None, description="every <period>, forever")

    @property
    def is_pattern(self) -> bool:
        return self.every is not None

    @model_validator(mode="after")
    def _timing(self) -> Timing:
        if self.every is None:
            if self.after is None:
                raise ValueError("a step needs 'after' (or 'every' with 'from' and 'to')")
            if self.from_ is not None or self.to is not None:
                raise ValueError("'from' and 'to' belong to an 'every' step")
        else:
            if self.after is not None or self.repeat is not None:
                raise ValueError("an 'every' step takes 'from' and 'to', not 'after' or 'repeat'")
            if self.from_ is None or self.to is None:
                raise ValueError("an 'every' step needs 'from' and 'to'")
        return self


class Step(Timing):
    """One step of a timeline: its timing, its actions, an optional catch-up override."""

    id: str = Field("", description="Step id; default step-<n> (1-based). Part of intent keys")
    do: Actions
    catch_up: CatchUpField | None = Field(None, description="Overrides the rule's catch_up")


def default_step_id(raw: Any, number: int) -> Any:
    """A raw step with its default id `step-<n>` (1-based) when it has none."""
    return {"id": f"step-{number}", **raw} if isinstance(raw, dict) and "id" not in raw else raw


class BecameAnchor(Node):
    """The instant the record started to match a condition."""

    became: ConditionField


def _anchor_kind(value: Any) -> str:
    return "field" if isinstance(value, str) else "became"


Anchor = Annotated[
    Annotated[str, pydantic.Tag("field")] | Annotated[BecameAnchor, pydantic.Tag("became")],
    Discriminator(_anchor_kind),
]


class Defer(Node):
    """While `when` holds, `from_step` and later steps are re-anchored on the `to` field."""

    when: ConditionField
    from_step: str
    to: str = Field(description="Date/datetime field that from_step lands on")


LimitCounts = dict[Literal[LIMIT_KINDS], PositiveInt]  # type: ignore[valid-type]


class Limits(Node):
    """Blast-radius limits of one rule: past them its intents are held for a person. Each kind
    named replaces the `[limits]` default for rules; kinds not named keep it."""

    per_cycle: LimitCounts = Field(default_factory=dict,
                                   description="Intents per executor pass, by kind")  # fmt: skip
    per_hour: LimitCounts = Field(default_factory=dict,
                                  description="Intents sent in any hour, by kind")  # fmt: skip


class Canary(Node):
    """Which records a `mode: canary` rule acts on live; on the others it plans in shadow."""

    percent: float | None = Field(None, gt=0, lt=100,
                                  description="A stable, hash-chosen share of the records")
    scope: ConditionField | None = Field(None, description="The records it acts on live")

    @model_validator(mode="after")
    def _one(self) -> Canary:
        if (self.percent is None) == (self.scope is None):
            raise ValueError("a canary needs exactly one of 'percent' and 'scope'")
        return self


class Rule(Node):
    """An instant rule (`do`) or a timeline rule (`since` + `steps`)."""

    id: str = Field(pattern=RULE_ID, description="Unique across all files; part of intent keys")
    description: str = ""
    on: Literal[RECORD_KINDS] = Field(description="Record kind")  # type: ignore[valid-type]
    enabled: bool = True
    mode: Literal["live", "shadow", "canary"] = Field(
        "live", description="shadow: plan and audit only; canary: live on `canary` records only"
    )
    canary: Canary | None = Field(None, description="mode: canary: the records it acts on live")
    scope: ConditionField | None = Field(None, description="Records outside it are ignored")
    limits: Limits | None = Field(None, description="Blast-radius limits: past them, held")
    max_actions_per_hour: PositiveInt | None = Field(
        None, description="Shorthand for limits: {per_hour: {any: N}}"
    )
    on_failure: Literal["stop", "continue"] = Field(
        "stop", description="stop: a do: list's later actions wait for, and fail with, an "
        "earlier one for the record; continue: each action on its own")
    calendar: str | None = Field(None, description="Calendar for business durations")
    vars: dict[str, Value] = Field(
        default_factory=dict,
        description="Rule parameters: vars.name in templates; a condition value that is exactly "
        "'{{ vars.name }}' is the var's value (not for a var that is itself a template)",
    )
    when: ConditionField | None = Field(None, description="Fires on entry; timeline runs while")
    do: Actions | None = None
    since: Anchor | None = Field(None, description="Anchor field, or {became: condition}")
    until: ConditionField | None = Field(None, description="Cancels steps not yet due")
    steps: Annotated[list[Step], Field(min_length=1)] | None = None
    defer: Defer | None = None
    catch_up: CatchUpField = Field(default_factory=CatchUp)

    TIMELINE_KEYS: ClassVar[tuple[str, ...]] = ("since", "until", "defer")

    @property
    def is_timeline(self) -> bool:
        return self.steps is not None

    def own_limits(self) -> tuple[dict[str, int], dict[str, int]]:
        """The rule's (per cycle, per hour) limits by kind, `max_actions_per_hour` included as
        `any` per hour (`limits` wins when it names `any` too)."""
        cycle = dict(self.limits.per_cycle) if self.limits else {}
        hour = dict(self.limits.per_hour) if self.limits else {}
        if self.max_actions_per_hour is not None:
            hour.setdefault("any", self.max_actions_per_hour)
        return cycle, hour

    def actions(self) -> Iterator[tuple[Step | None, int, Action]]:
        """Every action with its step (None for an instant rule) and index."""
        for step in self.steps or [None]:
            for index, action in enumerate(step.do if step else self.do or []):
                yield step, index, action

    @model_validator(mode="before")
    @classmethod
    def _default_step_ids(cls, raw: Any) -> Any:
        steps = raw.get("steps") if isinstance(raw, dict) else None
        if isinstance(steps, list):
            raw = {**raw, "steps": [default_step_id(s, n) for n, s in enumerate(steps, 1)]}
        return raw

    @model_validator(mode="after")
    def _shape(self) -> Rule:
        present = {key for key in ("do", "steps", *self.TIMELINE_KEYS) if getattr(self, key)}
        step_ids = [step.id for step in self.steps or []]
        problems = shape_problems(present, step_ids, self.defer.from_step if self.defer else None)
        if (self.mode == "canary") != (self.canary is not None):
            problems.append((("canary",), "'canary' goes with 'mode: canary'", True)
                             if self.canary else ((), "mode: canary needs 'canary: {percent: N}' "
                                                      "or 'canary: {scope: ...}'", False))
        if problems:
            raise LocatedError(problems)
        return self


def shape_problems(
    present: set[str], step_ids: list[str], from_step: str | None
) -> list[tuple[Path_, str, bool]]:
    """Problems with which keys a rule combines; shared with lint, which applies it to the raw
    YAML so these show even when a rule has other errors."""
    problems: list[tuple[Path_, str, bool]] = []
    if ("do" in present) == ("steps" in present):
        problems.append(((), "a rule needs exactly one of 'do' (instant) and 'steps' (timeline)",
                         False))  # fmt: skip
    if "steps" in present and "since" not in present:
        problems.append(((), "a timeline rule needs 'since' (its anchor)", False))
    if "steps" not in present:
        problems += [((key,), f"'{key}' belongs to a timeline rule (with 'steps')", True)
                     for key in Rule.TIMELINE_KEYS if key in present]  # fmt: skip
    for i, step_id in enumerate(step_ids):
        if step_id in step_ids[:i]:
            problems.append((("steps", i, "id"), f"duplicate step id {step_id!r}", False))
    if from_step is not None and from_step not in step_ids:
        problems.append((("defer", "from_step"), f"defer.from_step {from_step!r} names no step"
                         f"{did_you_mean(from_step, step_ids)}", False))  # fmt: skip
    return problems


# --- files --------------------------------------------------------------------------------


LocalDateTime = Annotated[
    datetime, _string("Local date and time, e.g. 2026-12-31T13:00", examples=["2026-12-31T13:00"])
]


class Closure(Node):
    """A partial closure in local time."""

    from_: LocalDateTime = Field(alias="from")
    to: LocalDateTime


class Holidays(Node):
    """Public holidays through the `holidays` library, plus explicit closures."""

    country: str | None = Field(None, description="ISO country code, e.g. GB")
    subdiv: str | None = Field(None, description="Subdivision, e.g. ENG")
    dates: list[date] = Field(default_factory=list, description="Extra whole-day closures")
    closures: list[Closure] = Field(default_factory=list)


class CalendarSpec(Node):
    """Working time for business durations."""

    timezone: str = Field(description="IANA timezone, e.g. Europe/London")
    hours: dict[str, list[str] | str] = Field(
        description="Days (mon, mon-fri, mon,wed) -> ['HH:MM-HH:MM', ...]; unlisted days closed"
    )
    holidays: Holidays | None = None


class Defaults(Node):
    """Per-file defaults."""

    calendar: str | None = Field(None, description="Calendar when a rule names none")


class RulesFile(Node):
    """A syncd rules file."""

    calendars: dict[str, CalendarSpec] = Field(default_factory=dict)
    defaults: Defaults = Field(default_factory=Defaults)
    vars: dict[str, Value] = Field(
        default_factory=dict,
        description="Vars of every rule in this file, as if written in each rule's vars; a "
        "rule's own var of the same name wins",
    )
    rules: list[Rule] = Field(default_factory=list)


# --- the JSON Schema ----------------------------------------------------------------------

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
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **_resolve_late_refs(schema)}

