"""What may be one segment of a SharePoint path: a folder or file name built from data (a
client's name cut from a file name, an account name) must be exactly one segment, or a name
like `..` walks out of the folder the rule meant, and `CON` or `a\\b` is refused by SharePoint.

The rules are SharePoint Online's ("Restrictions and limitations in OneDrive and SharePoint",
support.microsoft.com, article 64883a5d-228e-48f5-b3d2-eb39e07630fa): no `" * : < > ? / \\ |`,
no control characters, no leading or trailing space, not `.lock`, `CON`, `PRN`, `AUX`, `NUL`,
`COM0`-`COM9`, `LPT0`-`LPT9`, `desktop.ini`, nothing starting with `~$`, no `_vti_` anywhere;
and never `.` or `..`, which every HTTP client normalises away."""

from __future__ import annotations

import re
import unicodedata
from urllib.parse import quote

_FORBIDDEN_CHARS = frozenset('"*:<>?/\\|')
_RESERVED = re.compile(r"(?i)(\.lock|con|prn|aux|nul|com[0-9]|lpt[0-9]|desktop\.ini)")
MAX_SEGMENT = 255
# A `/` (or `\\`) printed by a path template's expression: data, not structure (templates.py)
DATA_SLASH = "\ue000"


def segment_problem(name: str) -> str | None:
    """Why `name` is not one safe path segment, or None if it is."""
    if DATA_SLASH in name:
        shown = name.replace(DATA_SLASH, "/")
        return f"{shown!r}: a value from the record contains '/' or '\\\\'"
    if name in ("", ".", ".."):
        return "empty" if not name else f"{name!r} is a relative path step"
    bad = sorted({c for c in name if c in _FORBIDDEN_CHARS})
    if bad:
        return f"{name!r} contains {' '.join(bad)}"
    if any(unicodedata.category(c) in ("Cc", "Cf", "Cs") for c in name):
        return f"{name!r} contains control or formatting characters"
    if name != name.strip():
        return f"{name!r} starts or ends with a space"
    if _RESERVED.fullmatch(name) or name.startswith("~$") or "_vti_" in name.lower():
        return f"{name!r} is a name SharePoint reserves"
    if len(name) > MAX_SEGMENT:
        return f"a name of {len(name)} characters (at most {MAX_SEGMENT})"
    return None


def path_problem(path: str) -> str | None:
    """Why `path` (segments joined by `/`, outer slashes ignored) is not a safe drive path:
    the first segment that is not one safe segment, with the reason."""
    for segment in path.strip("/").split("/"):
        problem = segment_problem(segment)
        if problem is not None:
            return f"{path!r}: {problem}: not one safe path segment"
    return None


def encoded(path: str) -> str:
    """`path` for a URL, each segment percent-encoded on its own (`#`, `%`, `?` stay part of
    the name). An empty, `.` or `..` segment raises ValueError: an HTTP client would resolve
    it, and the request would name another item. (What SharePoint refuses in a name it
    creates is checked where the name is built: `path_problem`.)"""
    segments = path.strip("/").split("/")
    for segment in segments:
        if segment in ("", ".", ".."):
            raise ValueError(f"{path!r}: {segment_problem(segment)}: not one safe path segment")
    return "/".join(quote(segment, safe="") for segment in segments)
