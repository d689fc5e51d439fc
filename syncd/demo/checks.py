"""Did each shipped process do its job? One check per process step of issue 6, judged only
from what people see at the story's checkpoints (tickets, comments, tags, Salesforce tasks,
SharePoint paths, mail), never from syncd's own log. Each check returns (ok, evidence): the
lines it verified, a failing one saying what was found instead. `syncd demo` prints them as
its ✓/✗ table; the end-to-end tests assert them one by one.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from syncd.demo.company import Checkpoint, NotReached, Seen
from syncd.demo.story import (
    CASE,
    ISSUE,
    LAPTOP,
    MULTISITE,
    NEW_CASE,
    OLD_TASK,
    ONSITE,
    TRANSCRIPT_TICKET,
    URGENT,
    URGENT_TASK,
    VPN,
)

Verdict = tuple[bool, list[str]]
SUPPORT = ["ann@support.example", "bob@support.example", "cleo@support.example"]
ACME_SI = "si@acme.example"
_UNSET: Any = object()


@dataclass
class Evidence:
    """What a check verified, line by line; `ok` while every expectation held."""

    lines: list[str] = field(default_factory=list)
    ok: bool = True

    def that(self, held: bool, what: str, found: Any = _UNSET) -> None:
        shown = "" if held or found is _UNSET else f" (found {found!r})"
        self.lines.append(f"{'✓' if held else '✗'} {what}{shown}")
        self.ok = self.ok and held

    def equal(self, found: Any, expected: Any, what: str) -> None:
        self.that(found == expected, what, found)


@dataclass(frozen=True)
class Check:
    process: str  # the process id: its rule file in rules/
    title: str
    judge: Callable[[Seen], Verdict]

    @property
    def name(self) -> str:
        return f"{self.process}: {self.title}"


CHECKS: list[Check] = []


@dataclass(frozen=True)
class Result:
    check: Check
    ok: bool
    evidence: list[str]


def judge(seen: Seen) -> list[Result]:
    """Every check, in the order of issue 6's processes."""
    return [Result(c, *c.judge(seen)) for c in CHECKS]


def check(process: str, title: str) -> Callable[[Callable[[Seen, Evidence], None]],
                                               Callable[[Seen], Verdict]]:
    """Register a check; a checkpoint not reached or a record missing fails it, with why."""

    def register(body: Callable[[Seen, Evidence], None]) -> Callable[[Seen], Verdict]:
        @functools.wraps(body)
        def judge(seen: Seen) -> Verdict:
            evidence = Evidence()
            try:
                body(seen, evidence)
            except NotReached as exc:
                evidence.that(False, str(exc))
            except LookupError as exc:  # a ticket or a mail that is not there
                evidence.that(False, f"missing: {type(exc).__name__} {exc}")
            return evidence.ok, evidence.lines

        CHECKS.append(Check(process, title, judge))
        return judge

    return register


def _tags(c: Checkpoint, subject: str) -> list[str]:
    return list(c.tickets[subject]["tags"])


def _bodies(c: Checkpoint, subject: str, public: bool | None = None) -> str:
    return "\n".join(x["body"] for x in c.comments[subject]
                     if public is None or x["public"] is public)


def _tasks(c: Checkpoint, prefix: str) -> list[dict[str, Any]]:
    return [t for t in c.tasks if str(t.get("Subject") or "").startswith(prefix)]


def _subjects(c: Checkpoint) -> list[str]:
    return [m["subject"] for m in c.mail]


# -- seed 000 -----------------------------------------------------------------------------------


@check("case-lifecycle", "a new case is announced, assigned, its Kind proposed; 1 h/24 h/26 h "
       "escalations")
def case_lifecycle_new_case_is_announced_assigned_and_escalated(seen: Seen, e: Evidence) -> None:
    c0 = seen["mon-08:00"]
    new = [sorted(m["to"]) for m in c0.mail if m["subject"] == f"New case #3: {CASE}"]
    e.equal(new, [SUPPORT], "'New case #3' mailed once to the Support group")
    ticket = c0.tickets[CASE]
    e.that(ticket["assignee_id"] is not None, "assigned to a first responder (round robin)")
    e.that("high_priority" in ticket["tags"], "Kind High Priority proposed", ticket["tags"])
    e.that("proposed this case's Kind" in _bodies(c0, CASE, public=False),
           "internal note explaining the proposed Kind")
    e.that(f"No action for 1 hour on case #3: {CASE}" in _subjects(seen["mon-09:05"]),
           "1 h without action: everyone reminded")
    tue = seen["tue-10:05"]
    owner = [m["to"] for m in tue.mail if m["subject"] == "Case #3 has had no action for 24 hours"]
    e.that(len(owner) == 1 and len(owner[0]) == 1, "24 h: the case owner mailed", owner)
    supervisors = [(m["to"], sorted(m["cc"])) for m in tue.mail
                   if m["subject"].startswith("Supervisors: case #3")]
    e.equal(supervisors, [(["sam@support.example"], SUPPORT)],
            "26 h: the supervisors mailed, everyone in copy")


@check("case-lifecycle", "an agent's reply stops the ladder")
def case_lifecycle_an_agent_reply_stops_the_ladder(seen: Seen, e: Evidence) -> None:
    later = [m["subject"] for c in seen.after("mon-09:05") for m in c.mail]
    e.equal([s for s in later if NEW_CASE in s and "No action" in s], [],
            f"no 1-hour reminder for the answered case '{NEW_CASE}'")
    e.equal([s for s in later if "has had no action" in s and "#3" not in s], [],
            "no 24-hour mail for it either")


@check("case-lifecycle", "reassignment to an engineer notifies the new owner")
def case_lifecycle_reassignment_notifies_the_new_owner(seen: Seen, e: Evidence) -> None:
    mail = seen["mon-09:40"].mail_to("erin@support.example")
    e.that(any(s.startswith("Case #") and s.endswith(f"is now yours: {NEW_CASE}") for s in mail),
           "Erin mailed 'Case #… is now yours'", mail)


@check("case-lifecycle", "a solved case is closed and the CSAT question sent")
def case_lifecycle_solved_case_is_closed_with_the_csat_question(seen: Seen, e: Evidence) -> None:
    c = seen["mon-10:00"]
    e.equal(c.tickets[NEW_CASE]["status"], "closed", "the solved case is closed")
    mail = c.mail_to("carl@acme.example")
    e.that(any(s.startswith("How did we do?") for s in mail), "the customer asked 'How did we "
           "do?'", mail)


@check("product-release", "early-release customers told; 6 weeks later marketing reminded and "
       "all customers told")
def product_release(seen: Seen, e: Evidence) -> None:
    e.equal(seen["mon-09:05"].mail_to("early-release@support.example"),
            ["Early release: Widget 4.2 is available to you"], "early-release customers mailed")
    final = seen["apr-13"]
    e.equal(final.mail_to("marketing.manager@support.example"),
            ["6 weeks are up: Widget 4.2 is now the official release"],
            "6 weeks later: the marketing manager reminded")
    e.equal(final.mail_to("customers@support.example"), ["Now available: Widget 4.2"],
            "6 weeks later: all customers mailed")


@check("employee-onboarding", "the arrival plan: prepare, announce, checklist, first day")
def employee_onboarding(seen: Seen, e: Evidence) -> None:
    prepare = [(m["subject"], sorted(m["cc"])) for m in seen["mon-08:00"].mail
               if m["to"] == ["harriet@support.example"]]
    e.equal(prepare, [("New team member Nora New arrives 2026-03-16: prepare the arrival",
                       ["ian@support.example", "sam@support.example"])],
            "HR prepares the arrival, IT and the line manager in copy")
    e.equal(seen["mon-09:05"].mail_to("harriet@support.example"),
            ["2 weeks to go: announce the arrival of Nora New"], "2 weeks before: announcement")
    e.equal(seen["mar-09"].mail_to("sam@support.example"),
            ["1 week to go: arrival checklist for Nora New"], "1 week before: checklist review")
    e.equal(seen["mar-16"].mail_to("sam@support.example"), ["Today: welcome Nora New"],
            "first day: welcome")


# -- seed 001 -----------------------------------------------------------------------------------


@check("ticket-categories-sla", "an Urgent Issue goes to the project manager at once")
def categories_urgent_issue_goes_to_the_project_manager_at_once(seen: Seen, e: Evidence) -> None:
    c0 = seen["mon-08:00"]
    ticket = c0.tickets[URGENT]
    e.equal(ticket["priority"], "urgent", "priority Urgent")
    e.equal(ticket["assignee_id"], seen.user("paul@support.example"), "assigned to Paul, Acme's PM")
    e.that("now with your dedicated project manager" in _bodies(c0, URGENT, public=True),
           "the customer told work has started")


@check("ticket-categories-sla", "the assignment deadline escalates; the PM takes it; 3 business "
       "days without feedback close it")
def categories_deadline_escalates_then_pm_then_closed_without_feedback(
    seen: Seen, e: Evidence
) -> None:
    e.that("assignment-overdue" not in _tags(seen["mon-10:00"], ISSUE), "not overdue on Monday")
    tue = seen["tue-10:05"]
    e.that("assignment-overdue" in _tags(tue, ISSUE), "overdue after 1 business day",
           _tags(tue, ISSUE))
    e.equal(tue.mail_to("lena@support.example"), [f"Not assigned in time: #4 {ISSUE}"],
            "the support lead mailed")
    assigned = seen["tue-10:20"]
    e.equal(assigned.tickets[ISSUE]["assignee_id"], seen.user("petra@support.example"),
            "set Open: assigned to Petra, Globex's PM")
    e.that("dedicated project manager" in _bodies(assigned, ISSUE, public=True),
           "the customer told work has started")
    e.equal(seen["tue-10:30"].tickets[ISSUE]["status"], "pending", "waiting for the customer")
    closed = seen["fri-10:35"]
    e.equal(closed.tickets[ISSUE]["status"], "closed", "closed 3 business days later")
    e.that("not heard back from you for 3 business days" in _bodies(closed, ISSUE, public=True),
           "with a note to the customer")


@check("ticket-categories-sla", "MTP notifies the tech lead; the task closed closes the ticket")
def categories_mtp_then_task_closed_closes_the_ticket(seen: Seen, e: Evidence) -> None:
    e.equal(seen["mon-09:05"].mail_to("tom@support.example"),
            [f"MTP: ready to move to production, #5 {URGENT}"], "the tech lead mailed on MTP")
    c = seen["mon-09:40"]
    e.equal(c.tickets[URGENT]["status"], "closed", "task closed: the ticket is closed")
    e.that("released to the production environment" in _bodies(c, URGENT, public=True),
           "the customer told it is in production")


@check("development-queue", "top priority bypasses the FIFO; one task at a time")
def development_queue_urgent_first_then_fifo(seen: Seen, e: Evidence) -> None:
    c0 = seen["mon-08:00"]
    devon = seen.user("devon@support.example")
    e.equal(c0.tickets[URGENT_TASK]["assignee_id"], devon, "the urgent task to Devon (Dora away)")
    e.equal(c0.tickets[OLD_TASK]["assignee_id"], None, "the older task waits: one at a time")
    e.equal(c0.mail_to("dana@support.example"), [f"Top priority task waiting: #7 {URGENT_TASK}"],
            "the lead dev alerted")
    e.equal(seen["mon-09:05"].tickets[OLD_TASK]["assignee_id"], devon,
            "the older task to Devon once he finished")


# -- seed 002 -----------------------------------------------------------------------------------


@check("si-onboarding", "a won SI opportunity creates the week-0 plan, owned by the roles")
def si_onboarding_week_0_plan_owned_by_roles(seen: Seen, e: Evidence) -> None:
    c0 = seen["mon-08:00"]
    week0 = [t for t in _tasks(c0, "Week 0 - ") if t["Subject"].endswith("Acme SI onboarding")]
    e.equal(len(week0), 6, "6 week-0 tasks for Acme")
    e.equal({t["ActivityDate"] for t in week0}, {"2026-03-06"}, "due at the end of week 0")
    owners = {t["Subject"].split(" ")[3]: seen.sf_users[t["OwnerId"]] for t in week0}
    e.equal(owners, {"0.1": "pat@sales.example", "0.2": "pat@sales.example",
                     "0.3": "pat@sales.example", "0.4": "alice@support.example",
                     "0.5": "sally@support.example", "0.7": "mark@support.example"},
            "each owned by its role")


@check("si-onboarding", "MON/WED/FRI emails to the SI in weeks 1 to 5, and each week's tasks")
def si_onboarding_auto_emails_and_weekly_tasks(seen: Seen, e: Evidence) -> None:
    week_1 = "Welcome aboard: your onboarding, week 1"
    e.equal(seen["mar-09"].mail_to(ACME_SI), [week_1], "week 1, Monday")
    e.equal(seen["mar-16"].mail_to(ACME_SI),
            [week_1, week_1, "Your onboarding, week 2: meet your Support lead"],
            "week 1 Wednesday and Friday, then week 2 Monday")
    days = [m["sent_at"][:10] for c in seen.values() for m in c.mail if m["to"] == [ACME_SI]]
    e.equal(days, [str(date(2026, 3, 9) + timedelta(weeks=w, days=d))
                   for w in range(5) for d in (0, 2, 4)],
            "sent every Monday, Wednesday and Friday of weeks 1 to 5")
    week2 = _tasks(seen["mar-16"], "Week 2 - 2.2 Initial mobile phone contact: Acme")
    e.equal([t["ActivityDate"] for t in week2], ["2026-03-20"], "the week-2 task, due Friday")


@check("si-onboarding", "week 6 deferred to Week-B without a viable project; phone calls follow")
def si_onboarding_week_6_deferred_to_week_b_with_phone_calls(seen: Seen, e: Evidence) -> None:
    mar16 = seen["mar-16"]
    e.equal(_tasks(mar16, "Week 6 - 6.1"), [], "Globex's week 6 waits for its Week-B date")
    e.equal(len(_tasks(mar16, "Week 6 - A2.1 Phone call")), 1, "Globex's week-6 phone call")
    apr13 = seen["apr-13"]
    training = {t["Subject"].rsplit(": ", 1)[1]: t["ActivityDate"]
                for t in _tasks(apr13, "Week 6 - 6.1")}
    e.equal(training, {"Acme SI onboarding": "2026-04-17", "Globex SI onboarding": "2026-04-17"},
            "Acme's week 6 as planned, Globex's on its Week-B date")
    e.equal(len(_tasks(apr13, "Week 10 - A2.1 Phone call")), 1, "Globex's week-10 phone call")
    e.equal([t["Subject"] for t in _tasks(apr13, "Week 6 - A2.1") if "Acme" in t["Subject"]], [],
            "no phone calls for Acme (viable)")


@check("multisite-licence", "tagged and assigned to Sales; Yes sends it back to the support "
       "queue")
def multisite_licence_sales_then_back_to_the_support_queue(seen: Seen, e: Evidence) -> None:
    c0 = seen["mon-08:00"]
    ticket = c0.tickets[MULTISITE]
    e.that({"multisite-licence", "multisite-sales-review"} <= set(ticket["tags"]),
           "tagged for Sales", ticket["tags"])
    e.equal(ticket["assignee_id"], seen.user("imogen@support.example"), "assigned to Imogen")
    e.that("Multi-site licence request, for Sales" in _bodies(c0, MULTISITE, public=False),
           "internal note for Sales")
    back = seen["mon-09:05"].tickets[MULTISITE]
    e.equal((back["assignee_id"], back["group_id"]), (None, seen.group("Support")),
            "Yes: unassigned, back in the Support queue")
    e.that("multisite-approved" in back["tags"] and "multisite-sales-review" not in back["tags"],
           "tagged approved, no longer for review", back["tags"])


# -- seed 003 -----------------------------------------------------------------------------------


@check("transcripts", "attached to its ticket, filed for its client, or reported, never dropped")
def transcripts_to_ticket_client_folder_or_manager(seen: Seen, e: Evidence) -> None:
    c0 = seen["mon-08:00"]
    attached = [a["file_name"] for x in c0.comments[TRANSCRIPT_TICKET]
                for a in x.get("attachments") or []]
    e.equal(attached, ["ZD-1 Acme printer review.vtt"], "ZD-1 attached to ticket #1")
    for path, what in (
        ("Clients/Acme Ltd/Meetings/Acme Ltd - Weekly project meeting.vtt", "filed for Acme"),
        ("Transcripts/Unmatched/Zoom meeting 2026-03-02.vtt", "the unmatched one set aside"),
        ("Transcripts/Zoom meeting 2026-03-02.vtt", "and never dropped"),
    ):
        e.that(path in c0.paths, f"{what}: {path}")
    e.equal(c0.mail_to("hal@support.example"),
            ["Transcript not filed: Zoom meeting 2026-03-02.vtt"], "the helpdesk manager asked")


@check("contract-won", "client folders created, implementation told, business development "
       "reminded")
def contract_won(seen: Seen, e: Evidence) -> None:
    c0 = seen["mon-08:00"]
    subs = ("Contract", "Meetings", "Meeting Minutes", "Action Log", "Development List", "RFCs")
    missing = [s for s in subs if f"Clients/Initech/{s}" not in c0.paths]
    e.equal(missing, [], "Clients/Initech and its 6 folders created")
    e.equal(c0.mail_to("implementation@support.example"),
            ["New client Initech: SharePoint folder ready"], "the implementation team told")
    task = _tasks(c0, "Agree the mobilisation & implementation meeting with Initech")
    e.equal([seen.sf_users[t["OwnerId"]] for t in task], ["bea@sales.example"],
            "a mobilisation task for Bea (business development)")


@check("weekly-meeting-agenda", "agenda not sent: the onboarding lead reminded 48 h ahead, "
       "their manager told at the 24 h deadline")
def weekly_meeting_agenda_reminder(seen: Seen, e: Evidence) -> None:
    mon, tue = seen["mon-10:00"], seen["tue-10:05"]
    e.equal(mon.mail_to("olivia@support.example"),
            ["Agenda due in 24 hours: Acme Ltd weekly project meeting"],
            "Olivia reminded 48 h before the meeting")
    e.equal(tue.mail_to("onboarding.manager@support.example"),
            ["Agenda not sent: Acme Ltd weekly project meeting in 24 hours"],
            "at the deadline, her manager told")
    e.equal([m["subject"] for c in seen.values() for m in c.mail
             if "Agenda" in m["subject"] and c not in (mon, tue)], [], "and only then")


@check("onsite-visit", "a ticket with the visit's information and the next defect day; "
       "priority one escalates")
def onsite_visit_ticket_defect_day_and_escalation(seen: Seen, e: Evidence) -> None:
    ticket = seen["mon-08:00"].tickets[ONSITE]
    e.equal(ticket["group_id"], seen.group("Helpdesk"), "opened in Helpdesk")
    e.equal(ticket["priority"], "urgent", "P1: priority Urgent")
    e.that({"onsite-visit", "internal-reproduction", "defect-day-2026-03-05"} <= set(
        ticket["tags"]), "for internal reproduction on the defect day 2026-03-05",
        ticket["tags"])
    e.that("reboots every night" in ticket["description"], "with the issues found on site")
    escalated = seen["mon-09:05"]
    e.that("escalated" in _tags(escalated, ONSITE), "escalated", _tags(escalated, ONSITE))
    e.equal(escalated.mail_to("helpdesk.director@support.example"),
            [f"Priority one from an onsite visit: #{ticket['id']} {ONSITE}"],
            "the helpdesk director mailed")


# -- seed 004 -----------------------------------------------------------------------------------


@check("ticket-lifecycle", "triaged from impact and severity, dispatched to an available IT Pro")
def ticket_lifecycle_triage_and_dispatch(seen: Seen, e: Evidence) -> None:
    c0 = seen["mon-08:00"]
    e.equal((c0.tickets[VPN]["priority"], c0.tickets[LAPTOP]["priority"]), ("high", "low"),
            "priorities from the matrix")
    for subject in (VPN, LAPTOP):  # Iris is away
        t = c0.tickets[subject]
        e.equal((t["assignee_id"], t["group_id"]),
                (seen.user("ivan@support.example"), seen.group("IT Pros")),
                f"'{subject}' to Ivan in IT Pros (Iris away)")


@check("ticket-lifecycle", "the customer told of the assignment")
def ticket_lifecycle_customer_told_of_the_assignment(seen: Seen, e: Evidence) -> None:
    e.that("assigned to one of our IT Pros" in _bodies(seen["mon-09:05"], VPN, public=True),
           "a public reply on the dispatched ticket")


@check("ticket-lifecycle", "customer unreachable: emailed, back to dispatch, re-dispatched when "
       "they answer")
def ticket_lifecycle_unreachable_customer_back_to_dispatch(seen: Seen, e: Evidence) -> None:
    c = seen["mon-09:05"]
    ticket = c.tickets[LAPTOP]
    e.equal((ticket["status"], ticket["assignee_id"], ticket["group_id"]),
            ("pending", None, seen.group("Dispatch")), "pending, unassigned, in Dispatch")
    e.that("customer-unreachable" not in ticket["tags"], "the unreachable tag cleared")
    e.that("could not get hold of you" in _bodies(c, LAPTOP, public=True), "the customer emailed")
    again = seen["mon-09:40"].tickets[LAPTOP]
    e.equal(again["assignee_id"], seen.user("ivan@support.example"),
            "the customer answered: dispatched again")


@check("ticket-lifecycle", "work completed goes to quality review; approved: closed, completion "
       "mail")
def ticket_lifecycle_quality_review_then_completion(seen: Seen, e: Evidence) -> None:
    review = seen["mon-09:05"]
    e.that("quality-review" in _tags(review, VPN), "in quality review", _tags(review, VPN))
    e.equal(review.mail_to("quinn@support.example"), [f"Ready for quality review: #9 {VPN}"],
            "the reviewer mailed")
    done = seen["mon-09:40"]
    e.equal(done.tickets[VPN]["status"], "closed", "approved: closed")
    completion = [m for m in done.mail if m["to"] == ["gina@globex.example"]]
    e.equal([m["subject"] for m in completion], [f"Your request #9 is complete: {VPN}"],
            "the completion mail")
    e.that("Updated the VPN gateway's firmware." in completion[0]["body"],
           "with the resolution")
