"""What the commands take on their command line: a record reference (`zendesk:123`) and
the settings file."""

from __future__ import annotations

import typer

from syncd.model import RecordRef
from syncd.vendors.registry import RECORD_KINDS

# `system:id` shorthands; Salesforce ids tell their object by their first three characters.
SHORT_KINDS = {"zendesk": "zendesk.ticket", "sharepoint": "sharepoint.file"}
SALESFORCE_PREFIXES = {
    "006": "salesforce.opportunity",
    "001": "salesforce.account",
    "00T": "salesforce.task",
}
RECORD_HELP = (
    "A record: zendesk.ticket:123, or zendesk:123, salesforce:006... (object from the id "
    "prefix: 006 opportunity, 001 account, 00T task), sharepoint:ID."
)
CONFIG_HELP = "Settings file (default: $SYNCD_CONFIG, else /etc/syncd/syncd.toml)."


def parse_record(text: str) -> RecordRef:
    """`zendesk.ticket:123` as is; `zendesk:123`, `salesforce:006...`, `sharepoint:ID` expanded."""
    system, sep, rid = text.partition(":")
    if not sep or not rid:
        raise typer.BadParameter(f"{text!r} is not a record (expected e.g. zendesk:123)")
    if "." in system:
        ref = RecordRef.parse(text)
        if ref.kind not in RECORD_KINDS:
            raise typer.BadParameter(
                f"unknown kind {ref.kind!r} (one of {', '.join(RECORD_KINDS)})"
            )
        return ref
    if system == "salesforce":
        return RecordRef(SALESFORCE_PREFIXES.get(rid[:3], "salesforce.record"), rid)
    if system in SHORT_KINDS:
        return RecordRef(SHORT_KINDS[system], rid)
    raise typer.BadParameter(
        f"unknown system {system!r} (zendesk, salesforce, sharepoint, or a full kind)"
    )
