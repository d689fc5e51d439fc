"""The rule language: what admins write, parsed and checked, with no evaluation.

One module per section of docs/rules.md: `conditions`, `actions`, `timeline`, `rule`, `files`
(calendars, defaults, vars), `jsonschema` (for editors), over `base` (the model base, located
errors, scalar types). Then what turns rule files into the engine's one input, a `RuleSet`
(`ruleset`): `loader`, `vars`, `templates` (with `bounded`), `lint`, `diagnostics`. The models
and the `RuleSet` are listed here, the language's public face (`from syncd.rules.language import
Rule`); the rest is read from its module.

It imports neither the engine, nor condition evaluation (`syncd.rules.conditions`, which
compiles the trees parsed here), nor the daemon.
"""

from syncd.rules.language.actions import (
    ACTIONS,
    LINK,
    Action,
    Assign,
    AssignMapping,
    Comment,
    CreateEvent,
    CreateTask,
    CreateTicket,
    Deliver,
    Dispatch,
    DispatchQueue,
    EnsureFolder,
    FileTranscript,
    Notify,
    SetFields,
    Tag,
    Unassign,
    Untag,
)
from syncd.rules.language.base import LocatedError
from syncd.rules.language.conditions import (
    OPS,
    AllOf,
    AnyOf,
    Condition,
    FieldCondition,
    Not,
    parse_condition,
)
from syncd.rules.language.files import CalendarSpec, Closure, Defaults, Holidays, RulesFile
from syncd.rules.language.jsonschema import json_schema
from syncd.rules.language.rule import Canary, Limits, Rule
from syncd.rules.language.ruleset import RuleSet, Source
from syncd.rules.language.timeline import BecameAnchor, CatchUp, Defer, Step, Timing

__all__ = [
    "ACTIONS", "LINK", "OPS", "Action", "AllOf", "AnyOf", "Assign", "AssignMapping",
    "BecameAnchor", "CalendarSpec", "Canary", "CatchUp", "Closure", "Comment", "Condition",
    "CreateEvent", "CreateTask", "CreateTicket", "Defaults", "Defer", "Deliver", "Dispatch",
    "DispatchQueue", "EnsureFolder", "FieldCondition", "FileTranscript", "Holidays", "Limits",
    "LocatedError", "Not", "Notify", "Rule", "RuleSet", "RulesFile", "SetFields", "Source",
    "Step", "Tag", "Timing", "Unassign", "Untag", "json_schema", "parse_condition",
]
