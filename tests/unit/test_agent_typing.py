"""The typing buffer over the real matcher and the default wordlists."""

from __future__ import annotations

import pytest

from agent.sensors.events import KeyInput
from agent.typing import TypingBuffer
from core.matcher import Matcher
from core.rules import default_dir, load_dirs


@pytest.fixture(scope="module")
def matcher() -> Matcher:
    return Matcher(load_dirs(default_dir()))


def press(char: str | None = None, name: str | None = None, **kw: object) -> KeyInput:
    return KeyInput(True, char, name, **kw)  # type: ignore[arg-type]


def release(char: str | None = None, name: str | None = None) -> KeyInput:
    return KeyInput(False, char, name)


def type_text(buf: TypingBuffer, text: str) -> list:
    hits = []
    for ch in text:
        k = press(name="space") if ch == " " else press(ch)
        hits += buf.on_key(k)
        hits += buf.on_key(release(k.char, k.name))
    return hits


def tap(buf: TypingBuffer, name: str) -> list:
    return buf.on_key(press(name=name)) + buf.on_key(release(name=name))


def make(matcher: Matcher, clipboard: str | None = None, **kw: object) -> TypingBuffer:
    return TypingBuffer(matcher, lambda: clipboard, **kw)  # type: ignore[arg-type]


def test_backspace_edit_gives_the_corrected_context(matcher: Matcher) -> None:
    buf = make(matcher)
    hits = type_text(buf, "kill mysefl")
    hits += tap(buf, "backspace") + tap(buf, "backspace")
    hits += type_text(buf, "lf")
    hits += tap(buf, "enter")
    assert [h.match.rule.id for h in hits] == ["suicide.kill_myself"]
    hit = hits[0]
    assert hit.context == "kill myself" and hit.source == "typed"
    assert hit.context[hit.start:hit.end] == "kill myself"
    assert buf.text == ""  # Enter ended the utterance


def test_benign_sentence_does_not_fire(matcher: Matcher) -> None:
    buf = make(matcher)
    assert type_text(buf, "we killed it at football and i laughed ") + tap(buf, "enter") == []


def test_auto_repeat_is_capped(matcher: Matcher) -> None:
    buf = make(matcher, max_repeat_run=3)
    buf.on_key(press("a"))
    for _ in range(40):
        buf.on_key(press("a"))  # held: auto-repeat without release
    buf.on_key(release("a"))
    assert buf.text == "aaa"


def test_auto_repeated_backspace_applies(matcher: Matcher) -> None:
    buf = make(matcher)
    type_text(buf, "hello")
    for _ in range(3):
        buf.on_key(press(name="backspace"))
    buf.on_key(release(name="backspace"))
    assert buf.text == "he"


def test_injected_keys_follow_the_setting(matcher: Matcher) -> None:
    on = make(matcher, match_injected=True)
    off = make(matcher, match_injected=False)
    for buf in (on, off):
        buf.on_key(press("x", injected=True))
    assert on.text == "x" and off.text == ""


def test_dead_key_is_combined(matcher: Matcher) -> None:
    buf = make(matcher)
    buf.on_key(press("\u0301", dead=True))
    buf.on_key(press("e"))
    assert buf.text == "é"


def test_shortcuts_type_nothing_and_paste_is_matched_whole(matcher: Matcher) -> None:
    buf = make(matcher, clipboard="honestly i want to kill myself tonight")
    type_text(buf, "abc")
    buf.on_key(press(name="ctrl_l"))
    hits = buf.on_key(press("v"))
    buf.on_key(release("v"))
    buf.on_key(release(name="ctrl_l"))
    assert buf.text == ""  # the paste ended the utterance; "v" was not typed
    assert [h.source for h in hits] == ["paste"]
    assert "kill myself" in hits[0].context


def test_shift_insert_and_windows_ctrl_v_paste(matcher: Matcher) -> None:
    buf = make(matcher, clipboard="kill myself")
    buf.on_key(press(name="shift"))
    assert buf.on_key(press(name="insert"))[0].source == "paste"
    buf.on_key(release(name="shift"))
    assert make(matcher, clipboard="kill myself").on_key(press("\x16"))[0].source == "paste"


def test_sign_in_window_keeps_typing_out_of_contexts(matcher: Matcher) -> None:
    buf = make(matcher, clipboard="kill myself")
    buf.window_changed("Sign in - Google Accounts", "chromium")
    hits = type_text(buf, "kill myself ") + tap(buf, "enter")
    buf.on_key(press(name="ctrl"))
    hits += buf.on_key(press("v"))
    assert hits == []


def test_field_after_username_is_not_matched(matcher: Matcher) -> None:
    buf = make(matcher)
    buf.window_changed("Moodle", "firefox")
    type_text(buf, "21jsmith")
    tap(buf, "tab")
    assert type_text(buf, "kill myself ") + tap(buf, "enter") == []
    # the next utterance is ordinary again
    assert type_text(buf, "i want to kill myself ") + tap(buf, "enter")


def test_reset_keys_forgets_a_modifier_whose_release_was_missed(matcher: Matcher) -> None:
    buf = make(matcher)
    buf.on_key(press(name="ctrl_l"))  # its release is lost with a dying hook
    type_text(buf, "abc")
    assert buf.text == ""  # everything looks like a shortcut
    buf.reset_keys()
    type_text(buf, "abc")
    assert buf.text == "abc"
