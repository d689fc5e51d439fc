"""The redactor every stored or printed vendor text goes through: a configured secret in each
form a client sends it, and HTTP Basic credentials of any origin."""

from __future__ import annotations

import base64
from urllib.parse import quote

import pytest

from syncd.logs import Redactor

TOKEN = "V-uTDHVWNUyL4HKGP5sOXsZ0yG9Nva8H"
BASIC = base64.b64encode(f"agent@acme.example/token:{TOKEN}".encode()).decode()


@pytest.mark.parametrize(
    "text",
    [
        f"token was {TOKEN} (raw)",
        f"echo: {BASIC}",  # base64 of email/token:TOKEN without its header
        f"GET /x?auth={quote(BASIC, safe='')}",
        f"q={quote(TOKEN, safe='')}",
        f'{{"headers": {{"Authorization": "Basic {BASIC}"}}}}',
    ],
)
def test_a_configured_secret_is_masked_in_every_form(text: str) -> None:
    redact = Redactor([TOKEN, BASIC])
    masked = redact(text)
    assert TOKEN not in masked and BASIC not in masked and quote(BASIC, safe="") not in masked
    assert "***" in masked


def test_any_basic_credential_is_masked_even_when_not_configured() -> None:
    other = base64.b64encode(b"someone@else.example:hunter2").decode()
    masked = Redactor()(f"HTTP 500\nauthorization: basic {other}\nvia: Basic {other}")
    assert other not in masked
    assert masked.count("***") == 2
