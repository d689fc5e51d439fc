"""The process's redactor, for every path that stores or prints text a vendor wrote (error
bodies echo request headers): the ledger's `last_error` and audit rows, quarantine reasons,
`run --once` failure lines, `syncd intents`/`syncd audit` output. Logs use the same one.

`install` is called wherever settings are loaded (`open_runtime`, `configure_logging`, the
CLI's store commands) with the configured secrets; until then only credential shapes
(`Authorization:` values, `Basic`/`Bearer` tokens, JWTs, `password=` pairs) are masked."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

_active: Callable[[str], str] | None = None


def install(redactor: Callable[[str], str]) -> None:
    global _active
    _active = redactor


def redact(text: str) -> str:
    global _active
    if _active is None:
        from syncd.logs import Redactor  # logs reads settings; imported only when needed

        _active = Redactor()
    return _active(text)


def redact_strings(value: Any) -> Any:
    """`value` with every string in it redacted (mapping keys and structure kept)."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, Mapping):
        return {k: redact_strings(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact_strings(v) for v in value]
    return value
