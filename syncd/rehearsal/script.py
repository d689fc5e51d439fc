"""A rehearsal's script (`syncd rehearse --script FILE`): what people do, and when, through the
vendors' APIs or the sandbox's seed, while syncd runs.

```yaml
- at: 2026-03-02T09:00:00Z          # simulated instant (ISO 8601; no offset = UTC)
  who: Carl Customer                # shown in the timeline (optional)
  what: raises a new case           # shown in the timeline (optional)
  zendesk:                          # or salesforce: / graph: - one vendor API call
    method: POST
    path: /tickets.json             # below the API root: /api/v2, /services/data/v59.0, /v1.0
    body: {ticket: {subject: Printer on fire, comment: {body: Help}}}
- at: 2026-03-03T10:00:00Z
  seed: {zendesk: {tickets: [...]}} # or add records with the sandbox's seed fixture format
```

Graph paths may name the sandbox's ids as `{site_id}` and `{drive_id}`. A call the vendor
refuses stops the rehearsal with the vendor's answer.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from syncd.errors import Fatal
from syncd.rehearsal.client import VENDORS, SandboxClient
from syncd.rehearsal.runner import Scripted

_SYSTEMS = {"zendesk": "Zendesk", "salesforce": "Salesforce", "graph": "SharePoint",
            "seed": "Sandbox"}
_KEYS = {"at", "who", "what", "record", "process", *_SYSTEMS}


class ScriptError(Fatal, ValueError):
    """A script that cannot be played: the message names the file, line and field."""


def instant(value: Any) -> datetime:
    """An ISO-8601 instant (a text or what YAML made of it); no offset means UTC."""
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, date):
        parsed = datetime(value.year, value.month, value.day)
    else:
        parsed = datetime.fromisoformat(str(value).strip().replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def load_script(path: Path, client: SandboxClient) -> list[Scripted]:
    """The script's steps, in time order, acting through `client`."""
    try:
        doc = YAML(typ="rt").load(path.read_text())
    except (OSError, YAMLError) as exc:
        raise ScriptError(f"{path}: {exc}") from None
    if doc is None:
        return []
    if not isinstance(doc, list):
        raise ScriptError(f"{path}: a script is a list of steps (- at: ..., zendesk: ...)")
    steps = [_step(path, index, raw, client) for index, raw in enumerate(doc)]
    return sorted(steps, key=lambda s: s.at)


def _step(path: Path, index: int, raw: Any, client: SandboxClient) -> Scripted:
    line = raw.lc.line + 1 if hasattr(raw, "lc") else 0
    where = f"{path}:{line}: step {index + 1}"
    if not isinstance(raw, dict):
        raise ScriptError(f"{where}: a step is a mapping (at, and one of {', '.join(_SYSTEMS)})")
    unknown = sorted(set(map(str, raw)) - _KEYS)
    if unknown:
        known = ", ".join(sorted(_KEYS))
        raise ScriptError(f"{where}: unknown key {unknown[0]!r} (known: {known})")
    if "at" not in raw:
        raise ScriptError(f"{where}: 'at' (the simulated instant) is required")
    try:
        at = instant(raw["at"])
    except ValueError:
        raise ScriptError(f"{where}: at: not an ISO-8601 instant: {raw['at']!r}") from None
    systems = [key for key in _SYSTEMS if key in raw]
    if len(systems) != 1:
        raise ScriptError(f"{where}: exactly one of {', '.join(_SYSTEMS)} per step")
    (system,) = systems
    body = _plain(raw[system])
    if system == "seed":
        if not isinstance(body, dict):
            raise ScriptError(f"{where}: seed: a fixture mapping (zendesk:, salesforce:, graph:)")
        act, what = (lambda: client.control("POST", "seed", body)), "seeds the sandbox"
    else:
        if not isinstance(body, dict) or not isinstance(body.get("path"), str):
            raise ScriptError(f"{where}: {system}: needs method, path (and body)")
        method = str(body.get("method") or "GET").upper()
        call = (system, method, body["path"], body.get("body"), body.get("params"))
        act, what = (lambda: client.call(*call)), f"{method} {body['path']}"
    assert system in VENDORS or system == "seed"

    def checked() -> None:
        try:
            act()
        except Exception as exc:  # the vendor's refusal, told with the step that made it
            answer = getattr(getattr(exc, "response", None), "text", "") or ""
            raise ScriptError(f"{where}: {what}: {exc} {answer[:300]}".rstrip()) from None

    return Scripted(at, checked, who=str(raw.get("who") or "script"),
                    what=str(raw.get("what") or what), record=str(raw.get("record") or ""),
                    system=_SYSTEMS[system], process=str(raw.get("process") or ""))


def _plain(value: Any) -> Any:
    """ruamel's commented containers as plain JSON values (dates as ISO text)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value
