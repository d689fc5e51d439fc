"""Doctor's value check on an unrestricted Salesforce picklist: a record may still hold a
value the org does not list (set through the API, imported), so a rule comparing with it is a
warning, not a failure; a restricted one never holds it."""

from __future__ import annotations

from syncd.connectors.base import Directory, Dropdown
from syncd.doctor.references import value_checks
from syncd.doctor.uses import Compared, Uses
from syncd.doctor.vendors import Found


def checks(restricted: bool) -> list[tuple[str, str]]:
    uses = Uses(compared=[Compared("salesforce", "Opportunity.LeadSource", "Webinar",
                                   "rules/x.yaml:4")])
    lead = Dropdown("Lead Source", ("Web", "Phone Inquiry", "Other"), restricted)
    found = {"salesforce": Found(Directory(), dropdowns={"Opportunity.LeadSource": lead})}
    return [(c.status, c.name) for c in value_checks(uses, found)]


def test_an_unlisted_value_of_an_unrestricted_picklist_is_a_warning() -> None:
    name = "salesforce field Opportunity.LeadSource value 'Webinar'"
    assert checks(restricted=False) == [("warn", name)]
    assert checks(restricted=True) == [("fail", name)]
