"""The story: what the example company's people do, and when, from Monday 2 March 2026 08:00
to 13 April, while syncd runs the shipped rules. Each step is one person's action through a
vendor's API at a simulated instant; the checkpoints are the instants at which what people see
is read back for the checks. Everything else (escalations, dispatch, mail, tasks, folders) is
syncd's doing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from syncd.demo.company import Company

CASE = "Our server is down"
NEW_CASE = "Cannot print invoices"
URGENT = "Checkout page broken for all users"
ISSUE = "Export button missing from the reports page"
OLD_TASK = "Task: restore the export button on the reports page"
URGENT_TASK = "Task: fix the checkout page"
MULTISITE = "Licence for our second site"
VPN = "VPN drops every hour"
LAPTOP = "New starter needs a laptop set up"
ONSITE = "Onsite visit: Acme Ltd - plant room controller"
TRANSCRIPT_TICKET = "Printer on fire"

# Which process each of the story's records plays in (tickets by subject, opportunities,
# clients' folders and transcripts by name): the timeline names the process of a change that
# carries no syncd key of its own (a folder, a ticket field).
CAST = {
    CASE: "case-lifecycle", NEW_CASE: "case-lifecycle",
    URGENT: "ticket-categories-sla", ISSUE: "ticket-categories-sla",
    OLD_TASK: "development-queue", URGENT_TASK: "development-queue",
    MULTISITE: "multisite-licence", VPN: "ticket-lifecycle", LAPTOP: "ticket-lifecycle",
    ONSITE: "onsite-visit", TRANSCRIPT_TICKET: "transcripts", "Transcripts": "transcripts",
    "Acme Ltd - Weekly project meeting.vtt": "transcripts", "Initech": "contract-won",
    "Acme SI onboarding": "si-onboarding", "Globex SI onboarding": "si-onboarding",
}


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text)


@dataclass(frozen=True)
class Step:
    """At `at`, `who` does `what` to `record` in `system`, through its API (`act`)."""

    at: datetime
    process: str
    system: str
    who: str
    what: str
    record: str
    act: Callable[[Company], None]


START = _at("2026-03-02T08:00:00+00:00")  # the seed's clock: a Monday
# Named instants at which a cycle runs and what people see is read back (in time order).
CHECKPOINTS = {
    "mon-08:00": START,
    "mon-09:05": _at("2026-03-02T09:05:00+00:00"),
    "mon-09:40": _at("2026-03-02T09:40:00+00:00"),
    "mon-10:00": _at("2026-03-02T10:00:00+00:00"),
    "tue-10:05": _at("2026-03-03T10:05:00+00:00"),
    "tue-10:20": _at("2026-03-03T10:20:00+00:00"),
    "tue-10:30": _at("2026-03-03T10:30:00+00:00"),
    "fri-10:35": _at("2026-03-06T10:35:00+00:00"),
    "mar-09": _at("2026-03-09T09:05:00+00:00"),
    "mar-16": _at("2026-03-16T09:05:00+00:00"),
    "apr-13": _at("2026-04-13T09:05:00+00:00"),
}
END = CHECKPOINTS["apr-13"]

MON_0830 = _at("2026-03-02T08:30:00+00:00")
MON_0910 = _at("2026-03-02T09:10:00+00:00")

STEPS = [
    Step(MON_0830, "case-lifecycle", "Zendesk", "Carl Customer", "raises a new case by email",
         NEW_CASE, lambda co: co.new_ticket(NEW_CASE, "carl@acme.example", "Support",
                                            "The invoice printer prints blanks.")),
    Step(MON_0830, "multisite-licence", "Zendesk", "Imogen Sales", "Sales decision: Yes",
         MULTISITE, lambda co: co.update(MULTISITE, custom={"sales_decision": "yes"})),
    Step(MON_0830, "ticket-lifecycle", "Zendesk", "Ivan ITPro",
         "could not reach the customer: tags it customer-unreachable",
         LAPTOP, lambda co: co.add_tags(LAPTOP, "customer-unreachable")),
    Step(MON_0830, "ticket-categories-sla", "Zendesk", "Paul PM", "moves the task to MTP",
         URGENT, lambda co: co.update(URGENT, custom={"dev_stage": "mtp"})),
    Step(MON_0830, "development-queue", "Zendesk", "Devon Developer", "solves the urgent task",
         URGENT_TASK, lambda co: co.update(URGENT_TASK, status="solved")),
    Step(MON_0830, "ticket-lifecycle", "Zendesk", "Ivan ITPro",
         "Work state: Work Completed, with the resolution",
         VPN, lambda co: co.update(VPN, custom={
             "work_state": "work_completed",
             "resolution": "Updated the VPN gateway's firmware."})),
    Step(MON_0910, "case-lifecycle", "Zendesk", "the first responder",
         "answers the customer (an agent action: the ladder stops)",
         NEW_CASE, lambda co: co.reply(NEW_CASE, co.assignee_email(NEW_CASE),
                                       "Thanks, we are looking at it.")),
    Step(MON_0910, "case-lifecycle", "Zendesk", "the first responder",
         "reassigns it to Erin Engineer (Engineers)",
         NEW_CASE, lambda co: co.update(NEW_CASE, group_id=co.groups["Engineers"],
                                        assignee_id=co.users["erin@support.example"])),
    Step(MON_0910, "ticket-lifecycle", "Zendesk", "Carl Customer",
         "answers: \"Call me at 14:00 please.\"",
         LAPTOP, lambda co: co.reply(LAPTOP, "carl@acme.example", "Call me at 14:00 please.")),
    Step(MON_0910, "ticket-lifecycle", "Zendesk", "Quinn Quality", "Work state: Quality Approved",
         VPN, lambda co: co.update(VPN, custom={"work_state": "quality_approved"})),
    Step(MON_0910, "ticket-categories-sla", "Zendesk", "Tom Techlead", "closes the linked task",
         URGENT, lambda co: co.update(URGENT, custom={"dev_stage": "task_closed"})),
    Step(_at("2026-03-02T09:45:00+00:00"), "case-lifecycle", "Zendesk", "Erin Engineer",
         "solves the case", NEW_CASE, lambda co: co.update(NEW_CASE, status="solved")),
    Step(_at("2026-03-03T10:10:00+00:00"), "ticket-categories-sla", "Zendesk", "the monitor",
         "reviewed it: status Open, proceed",
         ISSUE, lambda co: co.update(ISSUE, status="open")),
    Step(_at("2026-03-03T10:25:00+00:00"), "ticket-categories-sla", "Zendesk", "Petra PM",
         "asks the customer for feedback: status Pending",
         ISSUE, lambda co: co.update(ISSUE, status="pending")),
]
