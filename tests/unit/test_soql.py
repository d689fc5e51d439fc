"""The sandbox's SOQL subset: what a query selects, filters and orders, and how it fails."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from syncd.sandbox.salesforce_schema import Catalog, SfError
from syncd.sandbox.salesforce_store import Store
from syncd.sandbox.soql import parse, run_query

NOW = datetime(2026, 3, 4, 15, 30, tzinfo=UTC)  # a Wednesday


def _org() -> tuple[Catalog, Store, dict[str, str]]:
    catalog = Catalog({"Opportunity": [{"name": "Week_0_Date__c", "type": "date"}, "Region__c"]})
    store = Store(catalog)
    ids: dict[str, str] = {}

    def add(key: str, sobject: str, **fields: Any) -> None:
        obj = catalog.get(sobject)
        assert obj is not None
        ids[key] = store.create(obj, fields, NOW, ids.get("ann", "005Sb0000000001"),
                                seeding=True)

    add("ann", "User", Username="ann@acme.example", Email="ann@acme.example", Name="Ann Lee")
    add("bob", "User", Username="bob@acme.example", Email="bob@acme.example", Name="Bob Roy")
    add("acme", "Account", Name="Acme", OwnerId=ids["bob"])
    add("globex", "Account", Name="Globex")
    rows = [  # name, stage, close date, amount, account, modstamp, region
        ("Alpha", "Closed Won", "2026-03-04", 100, "acme", "2026-03-04T10:00:00Z", "EMEA"),
        ("Beta", "Prospecting", "2026-03-03", None, "acme", "2026-03-01T10:00:00Z", None),
        ("Gamma", "Closed Lost", "2026-03-05", 300, "globex", "2026-02-20T10:00:00Z", "AMER"),
        ("O'Brien 50%", "Prospecting", "2026-02-01", 50, None, "2026-03-04T10:00:00Z", "emea"),
    ]
    for name, stage, close, amount, account, stamp, region in rows:
        add(name, "Opportunity", Name=name, StageName=stage, CloseDate=close, Amount=amount,
            AccountId=ids.get(account or ""), OwnerId=ids["ann"], SystemModstamp=stamp,
            Region__c=region, Week_0_Date__c=close)
    store.delete(catalog.objects["opportunity"], ids["Beta"], NOW, ids["ann"])
    store.create(catalog.objects["opportunity"], {
        "Name": "Delta", "StageName": "Qualification", "CloseDate": "2026-04-01",
        "AccountId": ids["globex"]}, NOW, ids["ann"])
    return catalog, store, ids


@pytest.fixture(scope="module")
def org() -> tuple[Catalog, Store, dict[str, str]]:
    return _org()


def query(org: tuple[Catalog, Store, dict[str, str]], text: str, *,
          include_deleted: bool = False) -> list[dict[str, Any]]:
    catalog, store, _ = org
    return run_query(text, catalog, store, NOW, include_deleted=include_deleted,
                     url_prefix="/services/data/v59.0").records


def names(org: tuple[Catalog, Store, dict[str, str]], where: str, **kw: Any) -> list[str]:
    return [r["Name"] for r in query(org, f"SELECT Name FROM Opportunity {where}", **kw)]


def error(org: tuple[Catalog, Store, dict[str, str]], text: str) -> SfError:
    with pytest.raises(SfError) as info:
        query(org, text)
    return info.value


def test_parent_fields_nest_with_attributes_and_null_parents_are_null(org: Any) -> None:
    rows = query(org, "select name, account.name, ACCOUNT.owner.EMAIL from opportunity "
                      "where name in ('Alpha', 'O\\'Brien 50%')")
    alpha, obrien = rows
    assert alpha["Name"] == "Alpha"
    assert alpha["Account"]["attributes"]["type"] == "Account"
    assert alpha["Account"]["Name"] == "Acme"
    assert alpha["Account"]["Owner"]["Email"] == "bob@acme.example"
    assert obrien["Account"] is None
    assert list(alpha) == ["attributes", "Name", "Account"]


def test_comparison_operators_on_text_numbers_and_dates(org: Any) -> None:
    assert names(org, "WHERE Amount > 50") == ["Alpha", "Gamma"]
    assert names(org, "WHERE Amount >= 50 AND Amount < 300") == ["Alpha", "O'Brien 50%"]
    assert names(org, "WHERE Amount <= 100.0") == ["Alpha", "O'Brien 50%"]
    assert names(org, "WHERE StageName <> 'Prospecting'") == ["Alpha", "Gamma", "Delta"]
    assert names(org, "WHERE CloseDate = 2026-03-04") == ["Alpha"]
    assert names(org, "WHERE Week_0_Date__c < 2026-03-04") == ["O'Brien 50%"]


def test_text_comparisons_ignore_case_and_not_equal_includes_nulls(org: Any) -> None:
    assert names(org, "WHERE Region__c = 'emea'") == ["Alpha", "O'Brien 50%"]
    assert names(org, "WHERE Region__c != 'EMEA'") == ["Gamma", "Delta"]
    assert names(org, "WHERE Region__c = null") == ["Delta"]
    assert names(org, "WHERE Region__c NOT IN ('amer')") == ["Alpha", "O'Brien 50%", "Delta"]


def test_like_wildcards_and_escaped_wildcards(org: Any) -> None:
    assert names(org, "WHERE Name LIKE 'g_mma'") == ["Gamma"]
    assert names(org, "WHERE Name LIKE '%a'") == ["Alpha", "Gamma", "Delta"]
    assert names(org, "WHERE Name LIKE '%50\\%'") == ["O'Brien 50%"]
    assert names(org, "WHERE Name LIKE 'O\\'%'") == ["O'Brien 50%"]
    assert names(org, "WHERE Name LIKE 'Alph\\_'") == []


def test_and_or_not_with_parentheses(org: Any) -> None:
    where = "WHERE (StageName = 'Closed Won' OR StageName = 'Closed Lost') AND NOT Amount > 200"
    assert names(org, where) == ["Alpha"]
    assert names(org, "WHERE NOT (Name = 'Alpha' OR Name = 'Gamma')") == ["O'Brien 50%", "Delta"]


def test_mixing_and_with_or_needs_parentheses_like_salesforce(org: Any) -> None:
    err = error(org, "SELECT Id FROM Opportunity WHERE Amount > 1 AND Amount < 5 OR Name = 'x'")
    assert err.code == "MALFORMED_QUERY"
    assert err.message.endswith("unexpected token: 'OR'")


def test_datetime_literals_with_offsets_compare_instants(org: Any) -> None:
    assert names(org, "WHERE SystemModstamp >= 2026-03-04T10:00:00Z") == ["Alpha",
                                                                          "O'Brien 50%", "Delta"]
    assert names(org, "WHERE SystemModstamp = 2026-03-04T11:00:00+01:00") == ["Alpha",
                                                                               "O'Brien 50%"]
    assert names(org, "WHERE SystemModstamp < 2026-03-04T10:00:00.000+0000") == ["Gamma"]


def test_relative_date_literals_follow_the_clock(org: Any) -> None:
    assert names(org, "WHERE CloseDate = TODAY") == ["Alpha"]
    assert names(org, "WHERE CloseDate = TOMORROW") == ["Gamma"]
    assert names(org, "WHERE CloseDate < YESTERDAY") == ["O'Brien 50%"]
    assert names(org, "WHERE SystemModstamp = LAST_N_DAYS:7") == ["Alpha", "O'Brien 50%",
                                                                 "Delta"]
    assert names(org, "WHERE SystemModstamp = LAST_N_DAYS:30") == ["Alpha", "Gamma",
                                                                  "O'Brien 50%", "Delta"]
    assert names(org, "WHERE CloseDate = NEXT_N_DAYS:1") == ["Gamma"]
    assert names(org, "WHERE CloseDate = THIS_MONTH") == ["Alpha", "Gamma"]
    assert names(org, "WHERE CloseDate > THIS_WEEK") == ["Delta"]


def test_order_by_several_keys_with_nulls_placement_limit_and_offset(org: Any) -> None:
    assert names(org, "ORDER BY Region__c") == ["Delta", "Gamma", "Alpha", "O'Brien 50%"]
    assert names(org, "ORDER BY Region__c DESC NULLS FIRST, Name DESC") == [
        "Delta", "O'Brien 50%", "Alpha", "Gamma"]
    assert names(org, "ORDER BY SystemModstamp, Id LIMIT 2 OFFSET 1") == ["Alpha", "O'Brien 50%"]
    assert names(org, "ORDER BY Account.Name DESC NULLS LAST") == ["Gamma", "Delta", "Alpha",
                                                                  "O'Brien 50%"]


def test_query_all_includes_deleted_records(org: Any) -> None:
    assert "Beta" not in names(org, "")
    rows = query(org, "SELECT Name, IsDeleted FROM Opportunity WHERE IsDeleted = true",
                 include_deleted=True)
    assert [(r["Name"], r["IsDeleted"]) for r in rows] == [("Beta", True)]


def test_ids_match_in_15_and_18_character_forms_of_any_case(org: Any) -> None:
    alpha = org[2]["Alpha"]
    for form in (alpha, alpha[:15], alpha.lower()):
        assert names(org, f"WHERE Id = '{form}'") == ["Alpha"]
    assert names(org, f"WHERE AccountId IN ('{org[2]['acme']}')") == ["Alpha"]
    err = error(org, "SELECT Id FROM Opportunity WHERE Id = 'nope'")
    assert err.code == "INVALID_QUERY_FILTER_OPERATOR"
    assert err.message.endswith("invalid ID field: nope")


def test_count_answers_total_size_without_records(org: Any) -> None:
    catalog, store, _ = org
    result = run_query("SELECT COUNT() FROM Opportunity WHERE Amount != null", catalog, store,
                       NOW, include_deleted=False, url_prefix="")
    assert (result.total_size, result.records) == (3, [])


def test_polymorphic_parents_expose_name_fields_and_type() -> None:
    catalog, store, ids = _org()
    store.create(catalog.objects["task"], {"Subject": "Call", "WhatId": ids["Alpha"]}, NOW,
                 ids["ann"])
    rows = run_query("SELECT What.Name, What.Type, Owner.Name FROM Task", catalog, store, NOW,
                     include_deleted=False, url_prefix="").records
    assert rows[0]["What"]["Name"] == "Alpha"
    assert rows[0]["What"]["Type"] == "Opportunity"
    assert rows[0]["What"]["attributes"]["type"] == "Opportunity"
    with pytest.raises(SfError) as info:
        run_query("SELECT What.StageName FROM Task", catalog, store, NOW, include_deleted=False,
                  url_prefix="")
    assert "No such column 'StageName' on entity 'Name'" in info.value.message


def test_group_is_an_object_name_and_queues_own_tasks() -> None:
    catalog, store, ids = _org()
    queue = store.create(catalog.objects["group"], {"Name": "Support", "Type": "Queue"}, NOW,
                         ids["ann"])
    store.create(catalog.objects["task"], {"Subject": "Triage", "OwnerId": queue}, NOW,
                 ids["ann"])
    groups = run_query("SELECT Name, DeveloperName FROM Group", catalog, store, NOW,
                       include_deleted=False, url_prefix="").records
    assert [(g["Name"], g["DeveloperName"]) for g in groups] == [("Support", "Support")]
    tasks = run_query("SELECT Owner.Name FROM Task WHERE Owner.Type = 'Queue'", catalog, store,
                      NOW, include_deleted=False, url_prefix="").records
    assert tasks[0]["Owner"]["Name"] == "Support"


@pytest.mark.parametrize(("text", "code", "tail"), [
    ("SELECT Id FRM Opportunity", "MALFORMED_QUERY", "unexpected token: 'FRM'"),
    ("SELECT Id FROM Opportunity WHERE", "MALFORMED_QUERY", "unexpected token: <EOF>"),
    ("SELECT Id FROM Opportunity WHERE Name = 'open", "MALFORMED_QUERY", "expecting '''"),
    ("SELECT Id FROM Opportunity GROUP BY Name", "MALFORMED_QUERY", "syncd sandbox)"),
    ("SELECT Id, id FROM Opportunity", "MALFORMED_QUERY", "duplicate field selected: Id"),
    ("SELECT Foo FROM Opportunity", "INVALID_FIELD",
     "No such column 'Foo' on entity 'Opportunity'. If you are attempting to use a custom field,"
     " be sure to append the '__c' after the custom field name. Please reference your WSDL or "
     "the describe call for the appropriate names."),
    ("SELECT Acount.Name FROM Opportunity", "INVALID_FIELD",
     "Didn't understand relationship 'Acount' in field path."),
    ("SELECT Id FROM Opportunities", "INVALID_TYPE", "sObject type 'Opportunities' is not "
     "supported."),
    ("SELECT Id FROM Opportunity WHERE CloseDate > '2026-01-01'", "INVALID_QUERY_FILTER_OPERATOR",
     "must be of type date and should not be enclosed in quotes"),
    ("SELECT Id FROM Opportunity WHERE CreatedDate > 2026-01-01", "INVALID_QUERY_FILTER_OPERATOR",
     "must be of type dateTime and should not be enclosed in quotes"),
    ("SELECT Id FROM Opportunity WHERE Name = 5", "INVALID_QUERY_FILTER_OPERATOR",
     "must be of type string and should be enclosed in quotes"),
    ("SELECT Id FROM Opportunity WHERE Description = 'x'", "INVALID_FIELD",
     "field 'Description' can not be filtered in query call"),
    ("SELECT Id FROM Opportunity OFFSET 2001", "NUMBER_OUTSIDE_VALID_RANGE", "2000"),
])
def test_errors_carry_salesforce_codes_and_messages(org: Any, text: str, code: str,
                                                    tail: str) -> None:
    err = error(org, text)
    assert (err.status, err.code) == (400, code)
    assert tail in err.message


def test_malformed_query_points_at_the_token_by_row_and_column(org: Any) -> None:
    err = error(org, "SELECT Id\nFROM Opportunity\nWHERE Name = = 'x'")
    assert err.message == ("\nWHERE Name = = 'x'\n             ^\nERROR at Row:3:Column:14\n"
                           "unexpected token: '='")


def _soql_quote(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(alphabet=st.characters(blacklist_categories=["Cs", "Cc"]), min_size=1,
               max_size=20).filter(lambda s: s.strip() == s))
def test_any_escaped_string_literal_finds_exactly_its_record(name: str) -> None:
    catalog = Catalog({})
    store = Store(catalog)
    account = catalog.objects["account"]
    wanted = store.create(account, {"Name": name}, NOW, "005Sb0000000001", seeding=True)
    store.create(account, {"Name": name + "x"}, NOW, "005Sb0000000001", seeding=True)
    rows = run_query(f"SELECT Id FROM Account WHERE Name = {_soql_quote(name)}", catalog, store,
                     NOW, include_deleted=False, url_prefix="").records
    assert [r["Id"] for r in rows] == [wanted]


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet="SELCTFROMWHEIDNam =<>!'\\%_(),.:0123456789-TZ\n", max_size=60))
def test_arbitrary_text_parses_or_fails_as_malformed_query(text: str) -> None:
    try:
        parse(text)
    except SfError as err:
        assert (err.status, err.code) == (400, "MALFORMED_QUERY")
