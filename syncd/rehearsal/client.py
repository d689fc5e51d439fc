"""A running sandbox as a rehearsal sees it: over HTTPS only, with its CA, through its
`/_sandbox/` control API and the vendors' own APIs (the unmodified clients' wire calls), so a
sandbox in another process (`syncd sandbox --dir DIR`) and one a test started in-process are
the same thing. What people do in a script goes through `call`; what the timeline reads goes
through the read helpers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import msal
import requests

from syncd.connectors.tls import PinnedSession, httpx_verify
from syncd.errors import Fatal

ZENDESK_API = "/api/v2"
SALESFORCE_API = "/services/data/v59.0"
VENDORS = ("zendesk", "salesforce", "graph")


class NotASandbox(Fatal, RuntimeError):
    """The target does not answer the sandbox's control API: rehearsals never touch a real
    vendor."""


class SandboxClient:
    """The sandbox described by `sandbox.json` (url, ca_bundle, each vendor's credentials)."""

    def __init__(self, info: dict[str, Any]) -> None:
        self.info = info
        self.url = str(info["url"]).rstrip("/")
        self.ca = str(info["ca_bundle"])
        self.http = PinnedSession(verify=self.ca)
        zd = info["zendesk"]
        self.zendesk_auth = (f"{zd['email']}/token", zd["token"])
        self._sf: tuple[str, str] | None = None  # (instance_url, token)
        self._graph: str | None = None  # token

    @classmethod
    def from_directory(cls, directory: Path) -> SandboxClient:
        path = directory / "sandbox.json"
        try:
            info = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise NotASandbox(f"{path}: not a sandbox directory ({exc})") from None
        return cls(info)

    def close(self) -> None:
        self.http.close()

    # -- the control API ---------------------------------------------------------------------
    def control(self, method: str, path: str, body: Any = None) -> Any:
        resp = self.http.request(method, f"{self.url}/_sandbox/{path.strip('/')}", json=body,
                                 timeout=60)
        resp.raise_for_status()
        return resp.json() if resp.content else None

    def ensure_sandbox(self) -> str:
        """The sandbox's clock; NotASandbox unless the control API answers as the sandbox's."""
        try:
            now = self.control("GET", "clock")["now"]
        except Exception as exc:
            raise NotASandbox(f"{self.url} does not answer the sandbox control API "
                              f"(GET /_sandbox/clock: {exc}); rehearsals run only against a "
                              "sandbox") from None
        if not isinstance(now, str):
            raise NotASandbox(f"{self.url}: GET /_sandbox/clock answered no clock")
        return now

    def set_clock(self, iso: str) -> None:
        self.control("POST", "clock", {"now": iso})

    # -- the vendors' APIs -------------------------------------------------------------------
    def call(self, vendor: str, method: str, path: str, body: Any = None,
             params: dict[str, Any] | None = None) -> Any:
        """One vendor API call as its own client makes it (`path` below the vendor's API root:
        `/tickets.json`, `/sobjects/Task`, `/sites/{site_id}/lists`), authenticated as the
        sandbox's credentials say; the JSON answer (None when empty). A token the sandbox's
        clock has expired (simulated weeks pass) is fetched again once."""
        try:
            return self._call(vendor, method, path, body, params)
        except (requests.HTTPError, httpx.HTTPStatusError) as exc:
            if exc.response is None or exc.response.status_code != 401:
                raise
            self._sf = self._graph = None
            return self._call(vendor, method, path, body, params)

    def _call(self, vendor: str, method: str, path: str, body: Any,
              params: dict[str, Any] | None) -> Any:
        if vendor == "zendesk":
            resp = self.http.request(method, f"{self.url}{ZENDESK_API}{path}", json=body,
                                     params=params, auth=self.zendesk_auth, timeout=60)
        elif vendor == "salesforce":
            instance, token = self._salesforce()
            resp = self.http.request(method, f"{instance}{SALESFORCE_API}{path}", json=body,
                                     params=params, timeout=60,
                                     headers={"Authorization": f"Bearer {token}"})
        elif vendor == "graph":
            g = self.info["graph"]
            with httpx.Client(base_url=g["base_url"], verify=httpx_verify(self.ca), timeout=60,
                              headers={"Authorization": f"Bearer {self._graph_token()}"}) as h:
                target = path if path.startswith("https://") else path.format(**g)
                answer = h.request(method, target, json=body, params=params)
                answer.raise_for_status()
                return answer.json() if answer.content else None
        else:
            raise ValueError(f"unknown vendor {vendor!r} (one of {', '.join(VENDORS)})")
        resp.raise_for_status()
        return resp.json() if resp.content else None

    def _salesforce(self) -> tuple[str, str]:
        if self._sf is None:
            sf = self.info["salesforce"]
            resp = self.http.post(sf["token_url"], timeout=60, data={
                "grant_type": "client_credentials", "client_id": sf["client_id"],
                "client_secret": sf["client_secret"]})
            resp.raise_for_status()
            answer = resp.json()
            self._sf = (str(answer.get("instance_url") or sf["instance_url"]),
                        str(answer["access_token"]))
        return self._sf

    def _graph_token(self) -> str:
        if self._graph is None:
            g = self.info["graph"]
            app = msal.ConfidentialClientApplication(
                g["client_id"], client_credential=g["client_secret"], authority=g["authority"],
                instance_discovery=False, http_client=PinnedSession(verify=self.ca))
            found = app.acquire_token_for_client(["https://graph.microsoft.com/.default"])
            if "access_token" not in found:
                raise NotASandbox(f"graph token refused: {found.get('error_description')}")
            self._graph = str(found["access_token"])
        return self._graph

    # -- reads the timeline needs ------------------------------------------------------------
    def zendesk_all(self, path: str, key: str) -> list[dict[str, Any]]:
        """Every row of a Zendesk list endpoint (offset pages)."""
        rows: list[dict[str, Any]] = []
        page = 1
        while True:
            found = self.call("zendesk", "GET", path, params={"page": page, "per_page": 100})
            rows += found[key]
            if not found.get("next_page") or not found[key]:
                return rows
            page += 1

    def soql(self, query: str) -> list[dict[str, Any]]:
        """Every record of a SOQL query (following nextRecordsUrl)."""
        try:
            return self._soql(query)
        except requests.HTTPError as exc:
            if exc.response is None or exc.response.status_code != 401:
                raise
            self._sf = None
            return self._soql(query)

    def _soql(self, query: str) -> list[dict[str, Any]]:
        instance, token = self._salesforce()
        headers = {"Authorization": f"Bearer {token}"}
        resp = self.http.get(f"{instance}{SALESFORCE_API}/query", params={"q": query},
                             headers=headers, timeout=60)
        records: list[dict[str, Any]] = []
        while True:
            resp.raise_for_status()
            page = resp.json()
            records += page["records"]
            if page.get("done", True) or not page.get("nextRecordsUrl"):
                return records
            resp = self.http.get(f"{instance}{page['nextRecordsUrl']}", headers=headers,
                                 timeout=60)

    def drive_changes(self, link: str | None) -> tuple[list[dict[str, Any]], str]:
        """The drive's items changed since `link` (every item when None), and the next link."""
        g = self.info["graph"]
        url = link or f"/drives/{g['drive_id']}/root/delta"
        items: list[dict[str, Any]] = []
        while True:
            page = self.call("graph", "GET", url)
            items += page.get("value") or []
            if page.get("@odata.nextLink"):
                url = page["@odata.nextLink"]
                continue
            return items, str(page["@odata.deltaLink"])
