"""`syncd doctor`'s checks: can syncd run its rules on this host, with this configuration?

Each check answers a question an administrator would otherwise learn the answer to from a
dead-lettered intent days later (a misnamed group, a missing secret, a clock off by minutes)
and says what to do about a failure, in their terms: a settings key, a file, a rule's file:line.
"""

from syncd.doctor.checklist import examine
from syncd.doctor.local import settings_failed
from syncd.doctor.report import Check

__all__ = ["Check", "examine", "settings_failed"]
