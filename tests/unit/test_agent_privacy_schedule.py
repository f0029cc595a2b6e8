"""The no-passwords heuristic and the schedule / off-site rule."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from agent.privacy import PasswordGuard, is_sign_in_window, looks_like_password, looks_like_username
from agent.schedule import MonitoringWindow, on_site
from core.policy import Schedule


@pytest.mark.parametrize("title", [
    "Sign in - Google Accounts", "Login | Microsoft 365", "Enter password", "Log on to Windows",
    "Authentication Required", "Unlock Keyring", "Two-factor verification", "sudo password",
])
def test_sign_in_titles(title: str) -> None:
    assert is_sign_in_window(title, "firefox")


@pytest.mark.parametrize("title", ["Untitled Document - Writer", "Pinterest", "Passing the ball - PE",
                                   "History essay", "Blog: designing a login page"])
def test_ordinary_titles(title: str) -> None:
    expected = "login" in title.lower()  # a title naming log-in is treated as one, on purpose
    assert is_sign_in_window(title, "libreoffice") is expected


def test_credential_apps() -> None:
    assert is_sign_in_window("Enter PIN", "pinentry")
    assert is_sign_in_window("Vault", "KeePassXC")
    assert is_sign_in_window("", "consent.exe")


def test_username_and_password_shapes() -> None:
    assert looks_like_username("j.smith@school.org.uk")
    assert looks_like_username("21jsmith")
    assert not looks_like_username("hello")
    assert not looks_like_username("two words")
    assert looks_like_password("Tr0ub4dor&3")
    assert not looks_like_password("hello world")
    assert not looks_like_password("lowercase")


def test_field_after_username_is_a_password_field() -> None:
    g = PasswordGuard()
    g.window_changed("Moodle", "firefox")
    assert not g.suppressed
    assert g.utterance_ended("21jsmith", "tab")
    assert g.suppressed  # the next field is (probably) the password
    g.utterance_ended("", "enter")
    assert not g.suppressed


def test_password_shaped_utterance_is_dropped() -> None:
    g = PasswordGuard()
    assert not g.utterance_ended("Kill1myself!", "enter")


def test_sign_in_window_suppresses_until_focus_moves() -> None:
    g = PasswordGuard()
    g.window_changed("Sign in - Google Accounts", "chromium")
    assert g.suppressed
    assert not g.utterance_ended("anything at all", "enter")
    g.window_changed("Chat", "chromium")
    assert not g.suppressed


def test_on_site_rule() -> None:
    assert on_site(["10.20.3.4"], ["10.20.0.0/16"])
    assert not on_site(["192.168.1.5", "fe80::1"], ["10.20.0.0/16"])
    assert on_site(["2001:db8::5"], ["10.0.0.0/8", "2001:db8::/32"])
    assert on_site([], [])


def test_monitoring_window_days_hours_and_network() -> None:
    sched = Schedule(days=("mon", "tue", "wed", "thu", "fri"), start="08:00", end="16:00",
                     timezone="UTC")
    home = MonitoringWindow(sched, ("10.20.0.0/16",), addresses=lambda: ["192.168.1.5"])
    school = MonitoringWindow(sched, ("10.20.0.0/16",), addresses=lambda: ["10.20.3.4"])
    monday_noon = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
    monday_night = datetime(2026, 11, 23, 20, 0, tzinfo=UTC)
    saturday = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
    assert school.active(monday_noon)
    assert not school.active(monday_night)
    assert not school.active(saturday)
    assert not home.active(monday_noon)
    assert MonitoringWindow().active(saturday)
