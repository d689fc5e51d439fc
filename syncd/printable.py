"""Text from customers reaches an admin's terminal (`syncd audit`, `intents`, `plan`) and log
readers: an ANSI escape, a window-title sequence, a NUL, a bidi override or a line break in a
ticket subject must show as what it is (`\\x1b`, `\\u202e`), never act on the terminal or forge
a line. Tabs stay; newlines stay only where the caller allows (inside a table cell)."""

from __future__ import annotations

import unicodedata
from typing import Any

from rich.console import Console

# Cc controls, Cf formats (bidi overrides, zero widths), Zl/Zp separators, Cs lone surrogates
_UNSAFE = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs"})


def _escape(char: str) -> str:
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(text: str, *, newlines: bool = False) -> str:
    """`text` with every character that could act on a terminal written as its escape."""
    if text.isprintable():
        return text
    kept = {"\t", "\n"} if newlines else {"\t"}
    return "".join(_escape(c) if c not in kept and unicodedata.category(c) in _UNSAFE else c
                   for c in text)


def escape_json_text(text: str) -> str:
    """A JSON (or JSON-quoted logfmt) text with the characters `json.dumps(ensure_ascii=False)`
    leaves raw but a reader may take as a line break or a control (U+2028, NEL, U+202E, DEL,
    lone surrogates) written as `\\uXXXX`, which JSON reads back as the same string."""
    if text.isprintable():
        return text
    return "".join(f"\\u{ord(c):04x}" if unicodedata.category(c) in _UNSAFE else c
                   for c in text)


class SafeConsole(Console):
    """A rich console that shows data as text: no markup, no highlighting, and every string it
    renders (table cells included) passed through `printable`."""

    def __init__(self, **options: Any) -> None:
        super().__init__(highlight=False, markup=False, emoji=False, **options)

    def render_str(self, text: str, **options: Any) -> Any:
        return super().render_str(printable(text, newlines=True), **options)
