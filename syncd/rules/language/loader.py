"""Load rule files into a `RuleSet`, with every problem as a positioned `Diagnostic`.

YAML is read with ruamel's round-trip loader so every node keeps its line and column; pydantic
errors carry a `loc` path that is walked back through that tree. A bad file never stops good
ones, and a bad rule never stops the other rules of its file: `load_rules` returns what is
sound plus the diagnostics for the rest, and `syncd check` (or a refused reload) prints them.
A rule's vars are its file's `vars` under its own (its own entry of a name wins), merged here
so the model every caller gets (engine, executor, doctor) and lint see one set. Its conditions
read them (`vars.substitute_vars`) before it is validated and linted, so the model holds plain
values. A problem with an inherited var is reported where the file writes it.
"""

from __future__ import annotations

import re
import typing
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from syncd.businesstime.calendars import Calendar, CalendarError
from syncd.rules.language import lint
from syncd.rules.language.actions import ACTIONS
from syncd.rules.language.base import LocatedError, Path_
from syncd.rules.language.diagnostics import Diagnostic, Severity, did_you_mean
from syncd.rules.language.files import CalendarSpec, Defaults, RulesFile
from syncd.rules.language.rule import Rule
from syncd.rules.language.ruleset import TEMPLATE_DIR, RuleSet, Source
from syncd.rules.language.templates import SUFFIX, NamedTemplate, TemplateProblem, load_named
from syncd.rules.language.vars import substitute_vars
from syncd.vendors.registry import KINDS

M = TypeVar("M", bound=BaseModel)
RULE_SUFFIXES = (".yaml", ".yml")


@dataclass(frozen=True)
class LoadResult:
    ruleset: RuleSet
    diagnostics: list[Diagnostic]
    files: list[str]

    @property
    def errors(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if d.is_error]


def load_rules(paths: str | Path | Iterable[str | Path]) -> LoadResult:
    """Load every rules file under `paths` (files, or directories searched recursively)."""
    return _Load().run([paths] if isinstance(paths, str | Path) else paths)


# --- positions ----------------------------------------------------------------------------


def locate(root: Any, path: Path_, at_key: bool = False) -> tuple[int, int]:
    """1-based (line, col) of the YAML node at `path` below `root`, as deep as it exists.

    Path elements the tree does not have (pydantic's union tags, a missing key) are skipped,
    so a missing key points at its parent mapping. `at_key` points at a mapping key instead of
    its value (an unknown key).
    """
    line, col = _start(root)
    node = root
    for i, elem in enumerate(path):
        if isinstance(node, CommentedMap) and elem in node:
            last = i == len(path) - 1
            line, col = node.lc.key(elem) if last and at_key else node.lc.value(elem)
            node = node[elem]
        elif isinstance(node, CommentedSeq) and isinstance(elem, int) and 0 <= elem < len(node):
            line, col = node.lc.item(elem)
            node = node[elem]
    return line + 1, col + 1


def _start(node: Any) -> tuple[int, int]:
    lc = getattr(node, "lc", None)
    return (lc.line, lc.col) if lc is not None and lc.line is not None else (0, 0)


def _plain(node: Any) -> Any:
    """ruamel's commented containers and scalar subclasses as plain Python values."""
    if isinstance(node, dict):
        return {_plain(k): _plain(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_plain(v) for v in node]
    for base in (bool, int, float, str):
        if isinstance(node, base):
            return base(node)
    return node


# --- pydantic errors -> diagnostics --------------------------------------------------------


def _field_keys(model: type[BaseModel], loc: Sequence[str | int]) -> list[str]:
    """YAML keys the model expects at `loc` (for "did you mean"), walking the annotations."""
    tp: Any = model
    for elem in loc:
        tp = _child(tp, elem)
        if tp is None:
            return []
    tp = _unwrap(tp)
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return [f.alias or name for name, f in tp.model_fields.items() if name != "kind"]
    return []


def _unwrap(tp: Any) -> Any:
    while typing.get_origin(tp) is typing.Annotated:
        tp = typing.get_args(tp)[0]
    return tp


def _child(tp: Any, elem: str | int) -> Any:
    tp = _unwrap(tp)
    origin = typing.get_origin(tp)
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        for name, info in tp.model_fields.items():
            if elem in (name, info.alias):
                return info.annotation
        return None
    if origin in (list, tuple):
        return typing.get_args(tp)[0] if isinstance(elem, int) else None
    if origin is dict:
        return typing.get_args(tp)[1]
    if elem in ACTIONS:  # the action union's discriminator tag
        return ACTIONS[str(elem)]
    for member in typing.get_args(tp):  # Optional[...] and other unions
        found = _child(member, elem)
        if found is not None:
            return found
    return None


def _messages(error: Any, model: type[BaseModel]) -> Iterator[tuple[Path_, str, bool]]:
    """(path, message, at_key) for one pydantic error dict."""
    loc: Path_ = tuple(error["loc"])
    kind, msg = error["type"], error["msg"]
    cause = error.get("ctx", {}).get("error")
    if isinstance(cause, LocatedError):
        for sub, message, at_key in cause.problems:
            yield (*loc, *sub), message, at_key
    elif kind == "extra_forbidden":
        key = str(loc[-1])
        yield loc, f"unknown key {key!r}{did_you_mean(key, _field_keys(model, loc[:-1]))}", True
    elif kind == "missing":
        yield loc, f"missing required key {loc[-1]!r}", False
    elif kind == "value_error":
        yield loc, msg.removeprefix("Value error, "), False
    else:
        where = ".".join(str(e) for e in loc if not isinstance(e, int)) or "value"
        text = msg[0].lower() + msg[1:]
        yield loc, f"{where}: {text}, got {error['input']!r}", False


# --- the load -----------------------------------------------------------------------------


@dataclass
class _Rule:
    """A rule's YAML awaiting lint, with its model if it validated."""

    rule: Rule | None
    file: str
    root: CommentedMap  # its file as written: positions
    path: Path_  # of the rule in `root`
    raw: dict[str, Any]  # as plain values, with its file's vars, its conditions reading them
    default_calendar: str | None
    unique: bool  # no earlier rule has its id


class _Load:
    def __init__(self) -> None:
        self.diagnostics: list[Diagnostic] = []
        self.files: list[str] = []
        self.rules: list[_Rule] = []
        self.calendars: dict[str, Calendar] = {}
        self.calendar_sources: dict[str, str] = {}
        self.templates: dict[Path, dict[str, NamedTemplate]] = {}
        self.broken_templates: set[Path] = set()
        self.rule_ids: dict[str, Source] = {}
        self.defaults: list[tuple[str, CommentedMap, str]] = []  # file, root, default calendar

    def report(self, file: str, root: Any, path: Path_, message: str,
               severity: Severity = "error", at_key: bool = False) -> None:
        line, col = locate(root, _shared_var(root, path), at_key)
        self.diagnostics.append(Diagnostic(file, line, col, severity, message))

    def run(self, paths: Iterable[str | Path]) -> LoadResult:
        for path in dict.fromkeys(self.expand(paths)):  # a file named twice loads once
            self.load_file(path)
        for file, root, calendar in self.defaults:
            if calendar not in self.calendars:
                message = lint.unknown_calendar(calendar, self.calendars)
                self.report(file, root, ("defaults", "calendar"), message)
        for directory in sorted({Path(r.file).parent / TEMPLATE_DIR for r in self.rules}):
            self.templates[directory] = self.load_templates(directory)
        sound = self.lint()
        ruleset = RuleSet(
            rules=tuple(rule for rule, _ in sound),
            calendars=self.calendars,
            sources={rule.id: source for rule, source in sound},
            templates=self.templates,
        )
        unique = dict.fromkeys(self.diagnostics)  # one lint and the model may say the same thing
        return LoadResult(ruleset, sorted(unique, key=_order), self.files)

    def expand(self, paths: Iterable[str | Path]) -> Iterator[Path]:
        for raw in paths:
            path = Path(raw)
            if path.is_dir():
                found = [p for p in sorted(path.rglob("*")) if p.suffix in RULE_SUFFIXES]
                yield from (p for p in found if p.is_file())
            elif path.is_file():
                yield path
            else:
                self.diagnostics.append(
                    Diagnostic(str(path), 0, 0, "error", "no such file or directory")
                )

    def load_file(self, path: Path) -> None:
        file = str(path)
        self.files.append(file)
        try:
            root = YAML(typ="rt").load(path.read_text(encoding="utf-8"))
        except MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            line, col = (mark.line + 1, mark.column + 1) if mark else (0, 0)
            problem = exc.problem or exc.context or "invalid YAML"
            self.diagnostics.append(Diagnostic(file, line, col, "error", f"YAML: {problem}"))
            return
        except (YAMLError, OSError, UnicodeDecodeError) as exc:
            self.diagnostics.append(Diagnostic(file, 0, 0, "error", f"cannot read: {exc}"))
            return
        if root is None:
            return
        if not isinstance(root, CommentedMap):
            self.report(file, root, (), "a rules file is a mapping with 'rules' and/or "
                        "'calendars'")
            return
        for key in root:
            if key not in RulesFile.model_fields:
                self.report(file, root, (key,), f"unknown key {key!r}"
                            f"{did_you_mean(str(key), RulesFile.model_fields)}", at_key=True)
        defaults = self.validate(Defaults, file, root, ("defaults",), root.get("defaults") or {})
        shared = _plain(root["vars"]) if self.items(file, root, "vars", CommentedMap) else {}
        for name in self.items(file, root, "calendars", CommentedMap):
            self.load_calendar(file, root, name)
        if defaults and defaults.calendar:
            self.defaults.append((file, root, defaults.calendar))
        for index in self.items(file, root, "rules", CommentedSeq):
            node = root["rules"][index]
            path = ("rules", index)
            raw, rule = self.validate_rule(file, root, path, node, shared)
            if isinstance(node, CommentedMap):
                calendar = defaults.calendar if defaults else None
                unique = self.unique_id(file, node)
                self.rules.append(_Rule(rule, file, root, path, raw, calendar, unique))

    def validate_rule(
        self, file: str, root: CommentedMap, path: Path_, node: Any, shared: dict[str, Any]
    ) -> tuple[Any, Rule | None]:
        """The rule's YAML with its file's vars (`shared`) and its conditions reading them, and
        its model: None when it does not validate or reads a var it cannot. A reference that
        cannot be resolved stays as written; what validation then says at the same place is
        not repeated."""
        raw, problems = substitute_vars(_inherit(_plain(node), shared))
        start = len(self.diagnostics)
        for sub, message in problems:
            self.report(file, root, (*path, *sub), message)
        said = {(d.line, d.col) for d in self.diagnostics[start:]}
        first = len(self.diagnostics)
        rule = self.validate(Rule, file, root, path, raw)
        self.diagnostics[first:] = [
            d for d in self.diagnostics[first:] if (d.line, d.col) not in said
        ]
        return raw, None if problems else rule

    def unique_id(self, file: str, node: Any) -> bool:
        """False (and reported) when another rule, in any file, already has this id."""
        rule_id = node.get("id") if isinstance(node, CommentedMap) else None
        if not isinstance(rule_id, str):
            return True
        if rule_id in self.rule_ids:
            first = self.rule_ids[rule_id]
            self.report(file, node, ("id",), f"duplicate rule id {rule_id!r} (first defined at "
                        f"{first})")
            return False
        self.rule_ids[rule_id] = Source(file, *locate(node, ()))
        return True

    def items(self, file: str, root: CommentedMap, key: str, shape: type) -> Iterable[Any]:
        """The keys or indexes of a top-level section, after checking its shape."""
        node = root.get(key)
        if node is None:
            return []
        if not isinstance(node, shape):
            expected = "a mapping" if shape is CommentedMap else "a list"
            self.report(file, root, (key,), f"'{key}' must be {expected}")
            return []
        return list(node) if shape is CommentedMap else range(len(node))

    def validate(
        self, model: type[M], file: str, root: CommentedMap, path: Path_, node: Any
    ) -> M | None:
        """The model for the YAML `node` at `path`, or None after reporting all its errors."""
        try:
            return model.model_validate(_plain(node))
        except ValidationError as exc:
            for error in exc.errors():
                for sub, message, at_key in _messages(error, model):
                    self.report(file, root, (*path, *sub), message, at_key=at_key)
            return None

    def load_calendar(self, file: str, root: CommentedMap, name: str) -> None:
        path = ("calendars", name)
        if self.validate(CalendarSpec, file, root, path, root["calendars"][name]) is None:
            return
        if name in self.calendar_sources:
            self.report(file, root, path, f"duplicate calendar {name!r} (first defined at "
                        f"{self.calendar_sources[name]})", at_key=True)
            return
        try:
            self.calendars[name] = Calendar.from_config(name, _plain(root["calendars"][name]))
        except CalendarError as exc:
            self.report(file, root, (*path, *_calendar_path(exc)), str(exc))
            return
        self.calendar_sources[name] = "{}:{}:{}".format(file, *locate(root, path, at_key=True))

    def load_templates(self, directory: Path) -> dict[str, NamedTemplate]:
        found: dict[str, NamedTemplate] = {}
        for path in sorted(directory.glob(f"*{SUFFIX}")) if directory.is_dir() else []:
            try:
                template = load_named(path)
            except TemplateProblem as exc:
                self.diagnostics.append(
                    Diagnostic(str(path), exc.lineno or 1, 1, "error", exc.message)
                )
                self.broken_templates.add(path)
                continue
            except (OSError, UnicodeDecodeError) as exc:
                self.diagnostics.append(Diagnostic(str(path), 0, 0, "error", f"cannot read: {exc}"))
                self.broken_templates.add(path)
                continue
            found[template.name] = template
        return found

    def lint(self) -> list[tuple[Rule, Source]]:
        """Lint every rule of a known kind; the sound ones (validated, unique, no error) are
        returned, each with its effective calendar (its own, else its file's default)."""
        sound = []
        for entry in self.rules:
            node = entry.raw
            kind = KINDS.get(node.get("on"))
            if kind is None:
                continue
            default = entry.default_calendar
            calendar = node.get("calendar") or (default if default in self.calendars else None)
            directory = Path(entry.file).parent / TEMPLATE_DIR
            env = lint.Env(
                calendars=frozenset(self.calendars),
                templates=self.templates.get(directory, {}),
                template_dir=str(directory),
                broken_templates=frozenset(
                    p.name.removesuffix(SUFFIX) for p in self.broken_templates
                    if p.parent == directory
                ),
                calendar=calendar,
            )
            findings = list(lint.lint(node, kind, env))
            for finding in findings:
                self.report(entry.file, entry.root, (*entry.path, *finding.path),
                            finding.message, finding.severity, finding.at_key)
            rule = entry.rule
            if rule and entry.unique and not any(f.severity == "error" for f in findings):
                where = self.rule_ids[rule.id]
                sound.append((rule.model_copy(update={"calendar": calendar}), where))
        return sound


def _inherit(rule: Any, shared: dict[str, Any]) -> Any:
    """The rule (plain values) with its file's vars under its own. A rule whose `vars` is not a
    mapping keeps it as written, for validation to report."""
    own = rule.get("vars", {}) if isinstance(rule, dict) else None
    if not shared or not isinstance(own, dict):
        return rule
    return {**rule, "vars": {**shared, **own}}


def _shared_var(root: Any, path: Path_) -> Path_:
    """`path` moved to the file's `vars` when it is below a var the rule inherits from there
    (`rules.3.vars.desk` -> `vars.desk`): a problem with that var points where it is written,
    and is said once for all the rules that inherit it (same place, same message)."""
    match path:
        case ("rules", int(index), "vars", str(name), *rest):
            rule = root["rules"][index]
            own = rule.get("vars") if isinstance(rule, CommentedMap) else None
            shared = root.get("vars")
            inherited = not (isinstance(own, CommentedMap) and name in own)
            if inherited and isinstance(shared, CommentedMap) and name in shared:
                return ("vars", name, *rest)
    return path


_CALENDAR_PATH = re.compile(r"calendars\.[^.\[:]+(?P<rest>[^: ]*): ")
_PATH_PART = re.compile(r"\.(?P<key>[^.\[]+)|\[(?P<index>\d+)\]")


def _calendar_path(exc: CalendarError) -> Path_:
    """The sub-path a CalendarError names in its message (`calendars.x.hours.mon[1]: ...`)."""
    match = _CALENDAR_PATH.match(str(exc))
    if match is None:
        return ()
    return tuple(
        int(part["index"]) if part["index"] else part["key"]
        for part in _PATH_PART.finditer(match["rest"])
    )


def _order(diagnostic: Diagnostic) -> tuple[str, int, int]:
    return diagnostic.file, diagnostic.line, diagnostic.col
