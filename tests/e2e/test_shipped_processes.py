"""The shipped processes (rules/*.yaml, docs/processes.md) end to end.

One story drives the real daemon (`run --once` cycles, in-process) with the shipped rules over
the example company of config/sandbox-seed.yaml, on a frozen clock kept equal to the
sandbox's, from Monday 2 March 2026 08:00 to 13 April. People's actions (a sales decision, a
public reply, a Work state) are made through the Zendesk API between cycles. What staff and
customers would see (tickets, comments, tags, Salesforce tasks, SharePoint files, mail) is read
back from the emulators at named checkpoints; one test per process asserts on them.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from syncd.clock import FrozenClock
from syncd.connectors.tls import PinnedSession
from syncd.daemon.cycle import run_cycle
from syncd.daemon.runtime import open_runtime
from syncd.sandbox.server import SandboxServer, load_fixture
from syncd.settings import load_settings

ROOT = Path(__file__).resolve().parents[2]
CHANGED_BROKEN = (
    "engine: conditions.Changed has no check() for the compiled fast path, so a rule using "
    "`changed` raises NotImplementedError and never fires"
)


@dataclass
class Checkpoint:
    """What people see at one instant."""

    tickets: dict[str, dict[str, Any]]  # by subject
    comments: dict[str, list[dict[str, Any]]]  # by ticket subject
    mail: list[dict[str, Any]]  # sent since the previous checkpoint
    tasks: list[dict[str, Any]]  # every Salesforce task
    paths: set[str]  # every SharePoint path
    failures: list[str] = field(default_factory=list)

    def mail_to(self, address: str) -> list[str]:
        return [m["subject"] for m in self.mail if address in m["to"]]


@dataclass
class Story:
    """The checkpoints of the story, and the directories to read them with."""

    at: dict[str, Checkpoint]
    users: dict[str, int]  # Zendesk user id by email
    groups: dict[str, int]  # Zendesk group id by name
    sf_users: dict[str, str]  # Salesforce user email by id

    def __getitem__(self, name: str) -> Checkpoint:
        return self.at[name]

    def values(self) -> list[Checkpoint]:
        return list(self.at.values())

    def user(self, email: str) -> int:
        return self.users[email]

    def group(self, name: str) -> int:
        return self.groups[name]


class Company:
    """The sandbox seeded with the example company, and syncd running the shipped rules."""

    def __init__(self, server: SandboxServer, tmp: Path) -> None:
        self.server = server
        server.control("POST", "/_sandbox/reset")
        fixture = load_fixture(ROOT / "config" / "sandbox-seed.yaml")
        fixture["zendesk"]["settings"] = {"rate_limit_per_minute": 100000,
                                          "incremental_per_minute": 100000}  # fmt: skip
        assert server.control("POST", "/_sandbox/seed", fixture) == {"ok": True}
        self.clock = FrozenClock(datetime.fromisoformat(fixture["clock"]))
        rules = tmp / "rules"
        shutil.copytree(ROOT / "rules", rules)
        env = {
            "SYNCD_SYNCD__RULES_DIR": str(rules),
            "SYNCD_SYNCD__STATE_DIR": str(tmp / "state"),
            "SYNCD_METRICS__ENABLED": "false",
            "SYNCD_ZENDESK__INCREMENTAL_PER_MINUTE": "100000",
            "SYNCD_GRAPH__LISTS": json.dumps(
                ["Releases", "Arrivals", "Weekly Meetings", "Onsite Visits"]),
            "SYNCD_GRAPH__WATCHED_FOLDERS": json.dumps(["Transcripts"]),
        }  # fmt: skip
        self.settings = load_settings(server.directory / "syncd.toml", env=env)  # type: ignore[operator]
        zd = server.info["zendesk"]
        self.http = PinnedSession(verify=server.ca_bundle)
        self.http.auth = (f"{zd['email']}/token", zd["token"])
        self.api = f"{server.url}/api/v2"
        self.fields = {f["key"]: f["id"] for f in self._get("/ticket_fields.json")["ticket_fields"]}
        self.users = {u["email"]: u["id"] for u in self._get("/users.json")["users"]}
        self.groups = {g["name"]: g["id"] for g in self._get("/groups.json")["groups"]}
        self.mail_seen = 0

    # -- time and syncd ----------------------------------------------------------------------
    def at(self, when: str) -> None:
        self.clock.set(datetime.fromisoformat(when))
        self.server.control("POST", "/_sandbox/clock", {"now": self.clock.now().isoformat()})

    def cycle(self, when: str) -> Checkpoint:
        """Move to `when`, run one `syncd run --once` cycle, and look at everything."""
        self.at(when)
        rt = open_runtime(self.settings, self.clock)
        try:
            report = run_cycle(rt)
        finally:
            rt.close()
        return self.look(list(report.failures))

    # -- what people see ---------------------------------------------------------------------
    def look(self, failures: list[str]) -> Checkpoint:
        tickets = {t["subject"]: t for t in self._get("/tickets.json")["tickets"]}
        comments = {subject: self._get(f"/tickets/{t['id']}/comments.json")["comments"]
                    for subject, t in tickets.items()}  # fmt: skip
        mail = self.server.control("GET", "/_sandbox/mail")["mail"]
        new, self.mail_seen = mail[self.mail_seen :], len(mail)
        snapshot = self.server.sandbox.snapshot()
        tasks = snapshot["salesforce"]["store"]["records"]["Task"]
        return Checkpoint(tickets, comments, new, tasks, _paths(snapshot["graph"]), failures)

    # -- what people do ----------------------------------------------------------------------
    def ticket_id(self, subject: str) -> int:
        found = [t["id"] for t in self._get("/tickets.json")["tickets"] if t["subject"] == subject]
        assert len(found) == 1, subject
        return int(found[0])

    def update(self, subject: str, custom: dict[str, Any] | None = None, **fields: Any) -> None:
        if custom:
            fields["custom_fields"] = [{"id": self.fields[k], "value": v}
                                       for k, v in custom.items()]  # fmt: skip
        self._put(f"/tickets/{self.ticket_id(subject)}.json", {"ticket": fields})

    def reply(self, subject: str, author: str, body: str) -> None:
        comment = {"body": body, "public": True, "author_id": self.users[author]}
        self._put(f"/tickets/{self.ticket_id(subject)}.json", {"ticket": {"comment": comment}})

    def add_tags(self, subject: str, *tags: str) -> None:
        self._put(f"/tickets/{self.ticket_id(subject)}/tags.json", {"tags": list(tags)})

    def new_ticket(self, subject: str, requester: str, group: str, body: str) -> None:
        ticket = {"subject": subject, "comment": {"body": body}, "requester": {"email": requester},
                  "group_id": self.groups[group]}  # fmt: skip
        resp = self.http.post(f"{self.api}/tickets.json", json={"ticket": ticket}, timeout=30)
        resp.raise_for_status()

    def _get(self, path: str) -> dict[str, Any]:
        resp = self.http.get(f"{self.api}{path}", timeout=30)
        resp.raise_for_status()
        return dict(resp.json())

    def _put(self, path: str, body: dict[str, Any]) -> None:
        resp = self.http.put(f"{self.api}{path}", json=body, timeout=30)
        resp.raise_for_status()


def _paths(graph: dict[str, Any]) -> set[str]:
    """Every live drive item's path, e.g. 'Clients/Acme Ltd/Meetings/x.vtt'."""
    items = {i["id"]: i for d in graph["drives"] for i in d["items"] if not i.get("deleted")}

    def path(item: dict[str, Any]) -> str:
        parent = items.get(item.get("parent_id") or "")
        if parent is None or (parent["name"] == "root" and parent.get("parent_id") is None):
            return str(item["name"])
        return f"{path(parent)}/{item['name']}"

    return {path(i) for i in items.values() if i["name"] != "root"}


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


@pytest.fixture(scope="module")
def story(sandbox_server: SandboxServer, tmp_path_factory: pytest.TempPathFactory
          ) -> Iterator[Story]:  # fmt: skip
    co = Company(sandbox_server, tmp_path_factory.mktemp("shipped"))
    seen: dict[str, Checkpoint] = {}
    seen["mon-08:00"] = co.cycle("2026-03-02T08:00:00+00:00")

    co.at("2026-03-02T08:30:00+00:00")
    co.new_ticket(NEW_CASE, "carl@acme.example", "Support", "The invoice printer prints blanks.")
    co.update(MULTISITE, custom={"sales_decision": "yes"})  # Sales: yes
    co.add_tags(LAPTOP, "customer-unreachable")  # the IT Pro could not reach the customer
    co.update(URGENT, custom={"dev_stage": "mtp"})  # the PM moves the task to MTP
    co.update(URGENT_TASK, status="solved")  # Devon finished the urgent task
    co.update(VPN, custom={"work_state": "work_completed",
                           "resolution": "Updated the VPN gateway's firmware."})  # fmt: skip
    seen["mon-09:05"] = co.cycle("2026-03-02T09:05:00+00:00")

    co.at("2026-03-02T09:10:00+00:00")
    responder = co.look([]).tickets[NEW_CASE]["assignee_id"]
    email = next(e for e, i in co.users.items() if i == responder)
    co.reply(NEW_CASE, email, "Thanks, we are looking at it.")  # an agent action: ladder stops
    erin = co.users["erin@support.example"]
    co.update(NEW_CASE, group_id=co.groups["Engineers"], assignee_id=erin)  # re-assigned
    co.reply(LAPTOP, "carl@acme.example", "Call me at 14:00 please.")  # reopens it
    co.update(VPN, custom={"work_state": "quality_approved"})
    co.update(URGENT, custom={"dev_stage": "task_closed"})  # the tech lead closed the task
    seen["mon-09:40"] = co.cycle("2026-03-02T09:40:00+00:00")

    co.at("2026-03-02T09:45:00+00:00")
    co.update(NEW_CASE, status="solved")
    seen["mon-10:00"] = co.cycle("2026-03-02T10:00:00+00:00")
    seen["tue-10:05"] = co.cycle("2026-03-03T10:05:00+00:00")

    co.at("2026-03-03T10:10:00+00:00")
    co.update(ISSUE, status="open")  # the monitor reviewed it: proceed
    seen["tue-10:20"] = co.cycle("2026-03-03T10:20:00+00:00")
    co.at("2026-03-03T10:25:00+00:00")
    co.update(ISSUE, status="pending")  # waiting for the customer's feedback
    seen["tue-10:30"] = co.cycle("2026-03-03T10:30:00+00:00")  # syncd sees it go Pending
    seen["fri-10:35"] = co.cycle("2026-03-06T10:35:00+00:00")
    seen["mar-09"] = co.cycle("2026-03-09T09:05:00+00:00")
    seen["mar-16"] = co.cycle("2026-03-16T09:05:00+00:00")
    seen["apr-13"] = co.cycle("2026-04-13T09:05:00+00:00")
    sf_users = co.server.sandbox.snapshot()["salesforce"]["store"]["records"]["User"]
    yield Story(seen, co.users, co.groups, {u["Id"]: u["Email"] for u in sf_users})


def _tags(c: Checkpoint, subject: str) -> list[str]:
    return list(c.tickets[subject]["tags"])


def _bodies(c: Checkpoint, subject: str, public: bool | None = None) -> str:
    return "\n".join(x["body"] for x in c.comments[subject]
                     if public is None or x["public"] is public)  # fmt: skip


def _tasks(c: Checkpoint, prefix: str) -> list[dict[str, Any]]:
    return [t for t in c.tasks if str(t.get("Subject") or "").startswith(prefix)]


# -- seed 000 -----------------------------------------------------------------------------------


def test_case_lifecycle_new_case_is_announced_assigned_and_escalated(
    story: Story,
) -> None:
    c0 = story["mon-08:00"]
    support = ["ann@support.example", "bob@support.example", "cleo@support.example"]
    new = [m for m in c0.mail if m["subject"] == f"New case #3: {CASE}"]
    assert len(new) == 1 and sorted(new[0]["to"]) == support
    ticket = c0.tickets[CASE]
    assert ticket["assignee_id"] is not None  # round robin, never Cleo (away)
    assert "high_priority" in ticket["tags"]  # the proposed Kind ("is down")
    assert "proposed this case's Kind" in _bodies(c0, CASE, public=False)

    assert "No action for 1 hour on case #3: Our server is down" in [
        m["subject"] for m in story["mon-09:05"].mail]  # fmt: skip
    tue = story["tue-10:05"]
    owner = [m for m in tue.mail if m["subject"] == "Case #3 has had no action for 24 hours"]
    assert len(owner) == 1 and len(owner[0]["to"]) == 1
    supervisors = [m for m in tue.mail if m["subject"].startswith("Supervisors: case #3")]
    assert len(supervisors) == 1
    assert supervisors[0]["to"] == ["sam@support.example"]
    assert sorted(supervisors[0]["cc"]) == support


def test_case_lifecycle_an_agent_reply_stops_the_ladder(story: Story) -> None:
    later = [m["subject"] for c in story.values()[2:] for m in c.mail]
    assert not [s for s in later if "Cannot print invoices" in s and "No action" in s]
    assert not [s for s in later if "has had no action" in s and "#3" not in s]


@pytest.mark.xfail(reason=CHANGED_BROKEN, strict=False)
def test_case_lifecycle_reassignment_notifies_the_new_owner(
    story: Story,
) -> None:
    assert any(s.startswith("Case #") and s.endswith(f"is now yours: {NEW_CASE}")
               for s in story["mon-09:40"].mail_to("erin@support.example"))  # fmt: skip


def test_case_lifecycle_solved_case_is_closed_with_the_csat_question(
    story: Story,
) -> None:
    c = story["mon-10:00"]
    assert c.tickets[NEW_CASE]["status"] == "closed"
    assert any(s.startswith("How did we do?") for s in c.mail_to("carl@acme.example"))


def test_product_release(story: Story) -> None:
    assert story["mon-09:05"].mail_to("early-release@support.example") == [
        "Early release: Widget 4.2 is available to you"]  # fmt: skip
    final = story["apr-13"]
    assert final.mail_to("marketing.manager@support.example") == [
        "6 weeks are up: Widget 4.2 is now the official release"]  # fmt: skip
    assert final.mail_to("customers@support.example") == ["Now available: Widget 4.2"]


def test_employee_onboarding(story: Story) -> None:
    prepare = [m for m in story["mon-08:00"].mail if m["to"] == ["harriet@support.example"]]
    assert [m["subject"] for m in prepare] == [
        "New team member Nora New arrives 2026-03-16: prepare the arrival"]  # fmt: skip
    assert sorted(prepare[0]["cc"]) == ["ian@support.example", "sam@support.example"]
    assert story["mon-09:05"].mail_to("harriet@support.example") == [
        "2 weeks to go: announce the arrival of Nora New"]  # fmt: skip
    assert story["mar-09"].mail_to("sam@support.example") == [
        "1 week to go: arrival checklist for Nora New"]  # fmt: skip
    assert story["mar-16"].mail_to("sam@support.example") == ["Today: welcome Nora New"]


# -- seed 001 -----------------------------------------------------------------------------------


def test_categories_urgent_issue_goes_to_the_project_manager_at_once(
    story: Story,
) -> None:
    c0 = story["mon-08:00"]
    ticket = c0.tickets[URGENT]
    assert ticket["priority"] == "urgent"
    assert ticket["assignee_id"] == story.user("paul@support.example")
    assert "now with your dedicated project manager" in _bodies(c0, URGENT, public=True)


def test_categories_deadline_escalates_then_pm_then_closed_without_feedback(
    story: Story,
) -> None:
    assert "assignment-overdue" not in _tags(story["mon-10:00"], ISSUE)
    tue = story["tue-10:05"]
    assert "assignment-overdue" in _tags(tue, ISSUE)  # 1 business day: Tuesday 09:00
    assert tue.mail_to("lena@support.example") == [f"Not assigned in time: #4 {ISSUE}"]
    assigned = story["tue-10:20"]
    assert assigned.tickets[ISSUE]["assignee_id"] == story.user("petra@support.example")
    assert "dedicated project manager" in _bodies(assigned, ISSUE, public=True)
    assert story["tue-10:30"].tickets[ISSUE]["status"] == "pending"
    closed = story["fri-10:35"]
    assert closed.tickets[ISSUE]["status"] == "closed"
    assert "not heard back from you for 3 business days" in _bodies(closed, ISSUE, public=True)


def test_categories_mtp_then_task_closed_closes_the_ticket(story: Story) -> None:
    assert story["mon-09:05"].mail_to("tom@support.example") == [
        f"MTP: ready to move to production, #5 {URGENT}"]  # fmt: skip
    c = story["mon-09:40"]
    assert c.tickets[URGENT]["status"] == "closed"
    assert "released to the production environment" in _bodies(c, URGENT, public=True)


def test_development_queue_urgent_first_then_fifo(story: Story) -> None:
    c0 = story["mon-08:00"]
    devon = story.user("devon@support.example")
    assert c0.tickets[URGENT_TASK]["assignee_id"] == devon  # Dora is away
    assert c0.tickets[OLD_TASK]["assignee_id"] is None  # one task at a time
    assert c0.mail_to("dana@support.example") == [
        f"Top priority task waiting: #7 {URGENT_TASK}"]  # fmt: skip
    assert story["mon-09:05"].tickets[OLD_TASK]["assignee_id"] == devon  # after he finished


# -- seed 002 -----------------------------------------------------------------------------------


def test_si_onboarding_week_0_plan_owned_by_roles(story: Story) -> None:
    c0 = story["mon-08:00"]
    week0 = [t for t in _tasks(c0, "Week 0 - ") if t["Subject"].endswith("Acme SI onboarding")]
    assert len(week0) == 6
    assert {t["ActivityDate"] for t in week0} == {"2026-03-06"}
    owners = {t["Subject"].split(" ")[3]: story.sf_users[t["OwnerId"]] for t in week0}
    assert owners == {"0.1": "pat@sales.example", "0.2": "pat@sales.example",
                      "0.3": "pat@sales.example", "0.4": "alice@support.example",
                      "0.5": "sally@support.example", "0.7": "mark@support.example"}  # fmt: skip


def test_si_onboarding_auto_emails_and_weekly_tasks(story: Story) -> None:
    assert story["mar-09"].mail_to("si@acme.example") == [
        "Welcome aboard: your onboarding, week 1"]  # fmt: skip
    assert story["mar-16"].mail_to("si@acme.example") == [
        "Your onboarding, week 2: meet your Support lead"]  # fmt: skip
    week2 = _tasks(story["mar-16"], "Week 2 - 2.2 Initial mobile phone contact: Acme")
    assert [t["ActivityDate"] for t in week2] == ["2026-03-20"]


def test_si_onboarding_week_6_deferred_to_week_b_with_phone_calls(
    story: Story,
) -> None:
    mar16 = story["mar-16"]
    assert not _tasks(mar16, "Week 6 - 6.1")  # Globex's week 6 waits for its Week-B date
    assert len(_tasks(mar16, "Week 6 - A2.1 Phone call")) == 1
    apr13 = story["apr-13"]
    training = {t["Subject"].rsplit(": ", 1)[1]: t["ActivityDate"]
                for t in _tasks(apr13, "Week 6 - 6.1")}  # fmt: skip
    # Acme is viable: week 6 as planned; Globex lands on its Week-B date (13 April)
    assert training == {"Acme SI onboarding": "2026-04-17", "Globex SI onboarding": "2026-04-17"}
    assert len(_tasks(apr13, "Week 10 - A2.1 Phone call")) == 1
    assert not [t for t in _tasks(apr13, "Week 6 - A2.1") if "Acme" in t["Subject"]]


def test_multisite_licence_sales_then_back_to_the_support_queue(
    story: Story,
) -> None:
    c0 = story["mon-08:00"]
    ticket = c0.tickets[MULTISITE]
    assert {"multisite-licence", "multisite-sales-review"} <= set(ticket["tags"])
    assert ticket["assignee_id"] == story.user("imogen@support.example")
    assert "Multi-site licence request, for Sales" in _bodies(c0, MULTISITE, public=False)
    back = story["mon-09:05"].tickets[MULTISITE]
    assert back["assignee_id"] is None
    assert back["group_id"] == story.group("Support")
    assert "multisite-approved" in back["tags"] and "multisite-sales-review" not in back["tags"]


# -- seed 003 -----------------------------------------------------------------------------------


def test_transcripts_to_ticket_client_folder_or_manager(story: Story) -> None:
    c0 = story["mon-08:00"]
    attached = [a["file_name"] for x in c0.comments["Printer on fire"]
                for a in x.get("attachments") or []]  # fmt: skip
    assert attached == ["ZD-1 Acme printer review.vtt"]
    assert "Clients/Acme Ltd/Meetings/Acme Ltd - Weekly project meeting.vtt" in c0.paths
    assert "Transcripts/Unmatched/Zoom meeting 2026-03-02.vtt" in c0.paths
    assert c0.mail_to("hal@support.example") == [
        "Transcript not filed: Zoom meeting 2026-03-02.vtt"]  # fmt: skip
    assert "Transcripts/Zoom meeting 2026-03-02.vtt" in c0.paths  # never dropped


def test_contract_won(story: Story) -> None:
    c0 = story["mon-08:00"]
    for sub in ("Contract", "Meetings", "Meeting Minutes", "Action Log", "Development List",
                "RFCs"):  # fmt: skip
        assert f"Clients/Initech/{sub}" in c0.paths
    assert c0.mail_to("implementation@support.example") == [
        "New client Initech: SharePoint folder ready"]  # fmt: skip
    task = _tasks(c0, "Agree the mobilisation & implementation meeting with Initech")
    assert [story.sf_users[t["OwnerId"]] for t in task] == ["bea@sales.example"]


def test_weekly_meeting_agenda_reminder(story: Story) -> None:
    assert story["tue-10:05"].mail_to("olivia@support.example") == [
        "Agenda not sent: Acme Ltd weekly project meeting in 24 hours"]  # fmt: skip
    assert not [m for c in story.values() for m in c.mail
                if "Agenda" in m["subject"] and c is not story["tue-10:05"]]  # fmt: skip


def test_onsite_visit_ticket_defect_day_and_escalation(story: Story) -> None:
    ticket = story["mon-08:00"].tickets[ONSITE]
    assert ticket["group_id"] == story.group("Helpdesk")
    assert ticket["priority"] == "urgent"
    assert {"onsite-visit", "internal-reproduction", "defect-day-2026-03-05"} <= set(
        ticket["tags"])  # fmt: skip
    assert "reboots every night" in ticket["description"]
    escalated = story["mon-09:05"]
    assert "escalated" in _tags(escalated, ONSITE)
    assert escalated.mail_to("helpdesk.director@support.example") == [
        f"Priority one from an onsite visit: #{ticket['id']} {ONSITE}"]  # fmt: skip


# -- seed 004 -----------------------------------------------------------------------------------


def test_ticket_lifecycle_triage_and_dispatch(story: Story) -> None:
    c0 = story["mon-08:00"]
    ivan = story.user("ivan@support.example")
    assert (c0.tickets[VPN]["priority"], c0.tickets[LAPTOP]["priority"]) == ("high", "low")
    for subject in (VPN, LAPTOP):  # Iris is away
        assert c0.tickets[subject]["assignee_id"] == ivan
        assert c0.tickets[subject]["group_id"] == story.group("IT Pros")


@pytest.mark.xfail(reason=CHANGED_BROKEN, strict=False)
def test_ticket_lifecycle_customer_told_of_the_assignment(story: Story) -> None:
    # dispatched in the first cycle, seen assigned (and the customer told) in the next
    assert "assigned to one of our IT Pros" in _bodies(story["mon-09:05"], VPN, public=True)


def test_ticket_lifecycle_unreachable_customer_back_to_dispatch(
    story: Story,
) -> None:
    c = story["mon-09:05"]
    ticket = c.tickets[LAPTOP]
    assert (ticket["status"], ticket["assignee_id"]) == ("pending", None)
    assert ticket["group_id"] == story.group("Dispatch")
    assert "customer-unreachable" not in ticket["tags"]
    assert "could not get hold of you" in _bodies(c, LAPTOP, public=True)
    again = story["mon-09:40"].tickets[LAPTOP]  # the customer answered: dispatched again
    assert again["assignee_id"] == story.user("ivan@support.example")


def test_ticket_lifecycle_quality_review_then_completion(story: Story) -> None:
    review = story["mon-09:05"]
    assert "quality-review" in _tags(review, VPN)
    assert review.mail_to("quinn@support.example") == [f"Ready for quality review: #9 {VPN}"]
    done = story["mon-09:40"]
    assert done.tickets[VPN]["status"] == "closed"
    completion = [m for m in done.mail if m["to"] == ["gina@globex.example"]]
    assert [m["subject"] for m in completion] == [f"Your request #9 is complete: {VPN}"]
    assert "Updated the VPN gateway's firmware." in completion[0]["body"]
