"""Extract the recorded Zendesk interactions syncd's calls meet from zenpy's test cassettes
(betamax JSON under tests/test_api/betamax/), into `recorded.json` next to this script.

    git clone https://github.com/facetoe/zenpy && git -C zenpy checkout <commit>
    python extract_recordings.py zenpy <commit> > recorded.json

Kept per interaction: method, path (host dropped), query, status, the response headers whose
name mentions a rate limit or the content type, and the JSON body with every list cut to its
first three elements (paging keys and counts kept as recorded), but in a whole export page.
Request headers (credentials) are not copied; e-mail addresses outside example.com become
redacted@example.com, and the value of every key ending in `token` becomes "redacted".
"""

from __future__ import annotations

import base64
import gzip
import json
import re
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

# (cassette, method, path as recorded with ids replaced by {id}, name in recorded.json)
# Lists are cut to three elements but in the interactions named in WHOLE.
WANTED = [
    ("TicketsIncrementalTest.test_get_values.json", "GET",
     "/api/v2/incremental/tickets/cursor.json", "export"),
    ("TicketsIncrementalTest.test_pagination.json", "GET",
     "/api/v2/incremental/tickets/cursor.json", "export_page"),
    ("TicketsIncrementalTest.test_get_values.json", "GET",
     "/api/v2/incremental/tickets/cursor.json", "export_whole"),
    ("TestDeletedTickets.test_delete_and_restore.json", "GET", "/api/v2/tickets/{id}.json",
     "ticket_show"),
    ("TestTicketCreateUpdateDelete.test_full_objects_create-create-multiple.json", "GET",
     "/api/v2/tickets/show_many.json", "tickets_show_many"),
    ("TestTicketCreateUpdateDelete.test_single_object_creation-create-single.json", "POST",
     "/api/v2/tickets.json", "ticket_create"),
    ("TestTicketCreateUpdateDelete.test_single_object_update-update-single.json", "PUT",
     "/api/v2/tickets/{id}.json", "ticket_update"),
    ("TestTicketCreateUpdateDelete.test_multiple_update_full_objects-update-many.json", "PUT",
     "/api/v2/tickets/update_many.json", "tickets_update_many"),
    ("TestTicketCreateUpdateDelete.test_multiple_update_full_objects-update-many.json", "GET",
     "/api/v2/job_statuses/{id}.json", "job_status"),
    ("TestTicketCreateUpdateDelete.test_single_update_raises_recordnotfoundexception"
     "-recordnotfound-update.json", "PUT", "/api/v2/tickets/{id}.json", "ticket_not_found"),
    ("TestUserMe.test_users_me.json", "GET", "/api/v2/users/me.json", "users_me"),
    ("TestUsersPagination.test_values.json", "GET", "/api/v2/users.json", "users"),
    ("TestUserCreateUpdateDelete.test_full_objects_create-create-multiple.json", "GET",
     "/api/v2/users/show_many.json", "users_show_many"),
    ("TestGroupCreateUpdateDelete.test_values.json", "GET", "/api/v2/groups.json", "groups"),
    ("TestGroupMemberships.test_values.json", "GET", "/api/v2/group_memberships.json",
     "group_memberships"),
    ("TestOrganizationCreateUpdateDelete.test_full_objects_create-create-multiple.json", "GET",
     "/api/v2/organizations/show_many.json", "organizations_show_many"),
    ("TestTicketFieldCreateUpdateDelete.test_single_object_creation-create-single.json", "POST",
     "/api/v2/ticket_fields.json", "ticket_field_create"),
    ("TestAttachmentUpload.test_upload_with_bytes_io-upload-single.json", "POST",
     "/api/v2/uploads.json", "upload"),
    ("TestTicketAudits.test_values.json", "GET", "/api/v2/ticket_audits.json", "ticket_audits"),
    ("TestWebhooks.test_list_webhooks-list.json", "GET", "/api/v2/webhooks.json", "webhooks"),
]


WHOLE = {"export_whole"}  # a whole export page (87 tickets): the export's parsing checked on all


def _body(response: dict[str, Any]) -> Any:
    raw = response["body"]
    data = base64.b64decode(raw["base64_string"]) if raw.get("base64_string") else \
        raw.get("string", "").encode()
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    return json.loads(data) if data.strip() else None


EMAIL = re.compile(r"[\w.+-]+@(?!example\.com\b)[\w-]+(?:\.[\w-]+)+")


def _cut(value: Any, keep: int | None = 3) -> Any:
    if isinstance(value, list):
        return [_cut(v, keep) for v in value[:keep]]
    if isinstance(value, dict):
        return {k: "redacted" if k.endswith("token") and isinstance(v, str) else _cut(v, keep)
                for k, v in value.items()}
    if isinstance(value, str):
        return EMAIL.sub("redacted@example.com", value)
    return value


def main(zenpy: Path, commit: str) -> None:
    out: dict[str, Any] = {"source": {"repository": "https://github.com/facetoe/zenpy",
                                      "commit": commit.strip(),
                                      "path": "tests/test_api/betamax/", "licence": "GPL-3.0"},
                           "interactions": {}}
    for cassette, method, wanted, name in WANTED:
        text = (zenpy / "tests/test_api/betamax" / cassette).read_text()
        for interaction in json.loads(text)["http_interactions"]:
            request, response = interaction["request"], interaction["response"]
            url = urlsplit(request["uri"])
            parts = ["{id}" if p.isdigit() or p.startswith("V3-") else p
                     for p in url.path.removesuffix(".json").split("/")]
            if request["method"] != method or "/".join(parts) + ".json" != wanted:
                continue
            headers = {k.lower(): v[0] if isinstance(v, list) else v
                       for k, v in response["headers"].items()
                       if "rate" in k.lower() or k.lower() == "content-type"}
            out["interactions"][name] = {
                "cassette": cassette, "recorded_at": interaction["recorded_at"],
                "method": method, "path": url.path, "query": url.query,
                "status": response["status"]["code"], "headers": headers,
                "body": _cut(_body(response), None if name in WHOLE else 3),
            }
            break
        else:
            raise SystemExit(f"{name}: no {method} {wanted} in {cassette}")
    json.dump(out, sys.stdout, indent=1, sort_keys=True, ensure_ascii=False)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2])
