"""HTTP clients for the hardening tests: a dashboard user signed in over real TLS, without a browser.

``sign_in`` walks the real sign-in form (the pre-sign-in CSRF cookie and token, then the
password) and reads the session's CSRF token from the page, as the dashboard's own script does.
``unlock`` unlocks the keyholder's key in that session.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import httpx

__all__ = ["DashClient", "anonymous", "csrf_of", "sign_in"]

_CSRF_INPUT = re.compile(r'name="csrf" value="([^"]+)"')
_CSRF_META = re.compile(r'<meta name="csrf-token" content="([^"]+)"')


def csrf_of(html: str) -> str:
    found = _CSRF_META.search(html) or _CSRF_INPUT.search(html)
    assert found, "no CSRF token in the page"
    return found.group(1)


@dataclass
class DashClient:
    """A cookie-keeping client for one dashboard user; ``csrf`` is their session's token."""

    http: httpx.Client
    role: str
    username: str = ""
    password: str = ""
    csrf: str = ""

    def post_form(self, path: str, data: dict[str, Any] | None = None, **kwargs: Any
                  ) -> httpx.Response:
        return self.http.post(path, data={**(data or {}), "csrf": self.csrf}, **kwargs)

    def unlock(self) -> None:
        answer = self.post_form("/unlock", {"password": self.password})
        assert answer.status_code == 303, (answer.status_code, answer.text[:300])

    def close(self) -> None:
        self.http.close()


def anonymous(server: Any, role: str = "none") -> DashClient:
    http = httpx.Client(base_url=server.url, verify=server.ssl_context(), timeout=60,
                        follow_redirects=False)
    return DashClient(http, role)


def sign_in(server: Any, role: str, username: str, password: str) -> DashClient:
    client = anonymous(server, role)
    client.username, client.password = username, password
    form = client.http.get("/login")
    assert form.status_code == 200, form.status_code
    answer = client.http.post("/login", data={"username": username, "password": password,
                                              "csrf": csrf_of(form.text)})
    assert answer.status_code == 303, (answer.status_code, answer.text[:300])
    page = client.http.get("/account")
    assert page.status_code == 200, page.status_code
    client.csrf = csrf_of(page.text)
    return client
