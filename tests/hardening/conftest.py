"""Fixtures of the hardening tests only (the shared ones live in tests/fixtures/)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.e2e.dashboard_helpers import SeedEvent, make_accounts, seed_events

__all__ = ["seeded"]


@pytest.fixture
def seeded(collector_server: Any) -> tuple[Any, dict[str, tuple[str, str]], str]:
    """A collector with accounts for every role and one sealed severity-5 event:
    (server, role -> (username, password), event id)."""
    server = collector_server
    accounts = make_accounts(server)
    events = [SeedEvent("suicide", 5, "suicide.kill_myself", "Chat", "i want to kill myself",
                        "kill myself")]
    seed_events(server, events)
    return server, accounts, events[0].id
