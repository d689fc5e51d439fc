"""HTTP sessions whose TLS trust is syncd's configuration, not the host environment's.

`requests` lets REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE override a session's `verify` (through
`merge_environment_settings`). Many servers set those variables for other software; syncd must
still trust exactly the CA bundle it was configured with (a sandbox CA, a corporate TLS
inspection CA). Every requests session syncd builds for zenpy, simple-salesforce and msal
comes from here.
"""

from __future__ import annotations

from typing import Any

import requests

from syncd.settings import ProxySection, TlsSection

SYSTEM_TRUST = TlsSection()  # no [tls] ca_bundle: the system's trust store
NO_PROXY = ProxySection()


class PinnedSession(requests.Session):
    """A requests session whose `verify` (CA bundle path or True) survives the environment.

    Like syncd's httpx client (`trust_env=False`), it ignores the ambient environment:
    HTTP(S)_PROXY, NO_PROXY and ~/.netrc (whose credentials requests would otherwise send to
    a vendor's login host). The one proxy every client uses is `[proxy] https`."""

    def __init__(self, verify: str | bool = True, proxies: dict[str, str] | None = None) -> None:
        super().__init__()
        self.trust_env = False
        self.verify = verify
        if proxies:
            self.proxies.update(proxies)

    def merge_environment_settings(
        self, url: Any, proxies: Any, stream: Any, verify: Any, cert: Any
    ) -> dict[str, Any]:
        settings = super().merge_environment_settings(url, proxies, stream, verify, cert)
        # An explicit per-request verify wins; otherwise the session's configured trust does,
        # never REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE.
        settings["verify"] = verify if verify not in (None, True) else self.verify
        return settings


def httpx_verify(ca_bundle: str | None) -> Any:
    """The `verify=` argument for httpx clients: the configured bundle, else system trust."""
    if not ca_bundle:
        return True
    import ssl

    return ssl.create_default_context(cafile=ca_bundle)


def ca_bundle(tls: TlsSection) -> str | None:
    """The configured CA bundle's path; None: the system's trust store."""
    return str(tls.ca_bundle) if tls.ca_bundle else None


def proxies(proxy: ProxySection) -> dict[str, str] | None:
    """requests' `proxies=` for the one configured proxy (None: no proxy)."""
    return {"https": proxy.https, "http": proxy.https} if proxy.https else None
