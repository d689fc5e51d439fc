"""Every exception class syncd defines sits in one family of syncd/errors.py (fatal, retryable,
skippable), and the tree drawn in its docstring names it: a new class without a place, or a
drawing that no longer matches the code, fails here."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import pytest

import syncd
from syncd import errors
from syncd.connectors.http import VendorError
from syncd.errors import Fatal, Retryable, Skippable, SyncdError

FAMILIES = (Fatal, Retryable, Skippable)
# signals of the fast template path, never leaving rules/templates: not errors (see errors.py)
NOT_ERRORS = {"_Unsupported", "_Slow"}


def _defined() -> dict[str, type[BaseException]]:
    """Every exception class defined in syncd's modules but the sandbox's (the vendors' own
    answers, sharing no code with syncd)."""
    found: dict[str, type[BaseException]] = {}
    for module in pkgutil.walk_packages(syncd.__path__, "syncd."):
        if module.name.startswith("syncd.sandbox"):
            continue
        loaded = importlib.import_module(module.name)
        for name, value in vars(loaded).items():
            if (inspect.isclass(value) and issubclass(value, BaseException)
                    and value.__module__ == module.name):
                found[f"{module.name}.{name}"] = value
    return found


DEFINED = _defined()


def test_the_walk_finds_the_classes_spread_over_the_modules() -> None:
    modules = {value.__module__ for value in DEFINED.values()}
    assert len(DEFINED) >= 20 and len(modules) >= 10


@pytest.mark.parametrize("qualname", sorted(DEFINED))
def test_each_exception_class_is_in_exactly_one_family(qualname: str) -> None:
    cls = DEFINED[qualname]
    if cls.__name__ in NOT_ERRORS:
        assert not issubclass(cls, SyncdError)
        return
    if cls in (SyncdError, *FAMILIES):
        return
    families = [family for family in FAMILIES if issubclass(cls, family)]
    if cls is VendorError:  # the base of RetryableError and PermanentError, never raised
        assert families == [] and issubclass(cls, SyncdError)
    else:
        assert len(families) == 1, f"{qualname}: {families}"
    assert cls.__name__ in (errors.__doc__ or ""), f"{qualname} is not in errors.py's tree"


@pytest.mark.parametrize(("name", "base"), [
    ("SettingsError", ValueError),
    ("LocatedError", ValueError),
    ("DurationError", ValueError),
    ("CalendarError", ValueError),
    ("TemplateProblem", ValueError),
    ("ScriptError", ValueError),
    ("Refused", ValueError),
    ("StoreError", RuntimeError),
    ("RulesRefused", RuntimeError),
    ("Fenced", RuntimeError),
    ("NotReached", LookupError),
])
def test_the_bases_callers_catch_them_by_are_kept(name: str, base: type) -> None:
    [cls] = [cls for cls in DEFINED.values() if cls.__name__ == name]
    assert issubclass(cls, base)
