"""Actions (docs/rules.md, "Actions"): one model per action an admin writes.

Actions are one model per action with a `kind` equal to the YAML key and the intent's `action`
name (`{notify: {...}}` -> `Notify(kind="notify", ...)`). The YAML surface form and the model
form both validate, so tests may build `{"kind": "tag", "tags": [...]}` directly.
"""

from __future__ import annotations

import typing
from typing import Annotated, Any, ClassVar, Literal, TypeAlias

from pydantic import (
    BaseModel,
    BeforeValidator,
    Field,
    PlainValidator,
    PositiveInt,
    WithJsonSchema,
    model_validator,
)

from syncd.businesstime import durations
from syncd.rules.language.base import (
    DEFS,
    LocatedError,
    Node,
    OffsetField,
    Regex,
    Value,
    late_ref,
)
from syncd.rules.language.conditions import parse_condition
from syncd.rules.language.diagnostics import did_you_mean
from syncd.rules.language.templates import PathText, RecipientText, Text

LINK = "record"  # `set` / `comment`: the key naming another record to write to (a template)
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


WhereField = Annotated[
    dict[str, Any], PlainValidator(_where), WithJsonSchema(late_ref("Condition"))
]


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
                             True)])
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
    WithJsonSchema(late_ref("Action")),
]
Actions = Annotated[list[ActionField], Field(min_length=1)]
