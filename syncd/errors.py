"""One root for syncd's own exceptions, in three families named for what syncd does with them.

Each class stays next to the code that raises it and keeps the base its callers catch it by:
pydantic turns a `ValueError` raised in a validator into a located field error, and the rule
schema, lint and calendars catch ValueError (`RuntimeError`, `LookupError` stay as well). The
daemon still decides by the class itself (`except NothingToDo`, `isinstance(exc,
RetryableError)`); the families say what each class means, so that a new one finds its place
and a reader sees what becomes of it.

    SyncdError
    ├── Fatal: stop and say why; a person fixes the cause, nothing is retried meanwhile
    │   ├── SettingsError       settings.py          the daemon or command refuses to start
    │   ├── StoreError          store/db.py          the state database cannot be opened or used
    │   ├── RulesRefused        daemon/runtime.py    a start with no rules to fall back on is
    │   │                                            refused; a refused reload keeps the rules
    │   │                                            running (daemon/rulesets.py)
    │   ├── Fenced              store/lease.py       a leader that lost the lease stops leading:
    │   │                                            its transaction rolls back, a standby leads
    │   ├── NotASandbox         rehearsal/client.py  `syncd rehearse` never touches a real vendor
    │   └── ScriptError         rehearsal/script.py  a rehearsal script that cannot be played
    ├── Retryable: the same work again, later, unchanged
    │   └── RetryableError      connectors/http.py   429, 5xx, timeouts: the connector retries
    │                                                with backoff, then the intent is failed
    │                                                with a retry instant (executor.backoff)
    ├── Skippable: this one item is set aside with its reason; every other goes on
    │   ├── PermanentError      connectors/http.py   a 4xx, a TLS failure: the intent is dead
    │   ├── ActionError         daemon/people.py     an intent that cannot be carried out: dead
    │   │   ├── NothingToDo                          ... has no effect: the intent is skipped
    │   │   ├── DirectoryMiss                        ... names someone not (yet) in a directory:
    │   │   └── RecordMiss                           ... or a record not read: read once more
    │   │                                            and prepared again, else dead
    │   ├── _Refused            daemon/executor.py   the verifying read refused: held (unknown)
    │   │                                            for a person
    │   ├── _Lost               daemon/executor.py   another executor claimed the intent first
    │   ├── Refused, BadSignature, Stale, Replayed   connectors/zendesk_webhook.py
    │   │                                            a webhook request answered 401; the
    │   │                                            incremental export brings the change
    │   ├── LocatedError        rules/language/      rule language problems: at load, a
    │   ├── DurationError       businesstime/        diagnostic naming file, line and field
    │   ├── CalendarError       businesstime/        (an error refuses the set: RulesRefused);
    │   ├── TemplateProblem     rules/language/      raised evaluating a record, the record is
    │   ├── TooCostly           rules/language/      quarantined, tried again (daemon/contain.py)
    │   └── NotReached          demo/company.py      `syncd demo` marks that process ✗
    └── VendorError             connectors/http.py   the common base of RetryableError and
                                                     PermanentError (never raised itself); a
                                                     failed poll, of either kind, is tried again
                                                     at the next interval

Outside the tree on purpose: the fast template path's signals (`_Unsupported`, `_Slow` in
rules/language/templates.py), which never leave their module and only mean "let Jinja render
this", and the sandbox's errors, which stand for the vendors' own error answers and share no
code with syncd (DESIGN.md).
"""

from __future__ import annotations


class SyncdError(Exception):
    """Raised by syncd itself (not by a library it uses)."""


class Fatal(SyncdError):
    """syncd cannot go on as configured: it stops and says why."""


class Retryable(SyncdError):
    """The same work may succeed later: it is tried again."""


class Skippable(SyncdError):
    """One item (an intent, a record, a request, a rule file's value) is set aside with the
    reason; the others go on."""
