"""The loop: sensor -> typing buffer -> lists (and, per utterance, the model) -> capture -> seal -> spool.

One worker thread takes everything the sensors queued (raw keys, clicks, focus changes, listener
restarts) and the sentence judge's verdicts in order, so the typing buffer needs no locks. A
list match is checked against the schedule and flood control, then the monitor under the active
window is captured, sealed to the policy's keyholders together with the sensitive header, and
written to the spool before anything else happens to it. Nothing typed is kept anywhere but the
bounded buffer and, until it is judged, the judge's queue.

The sentence model (agent.judge) sees utterances, not keys: when one ends (Enter, Tab, a click,
a focus change, a paste), at a sentence end, after ``utterance_pause_s`` without a key, and each
new window title. Its verdicts come back here and fire like a rule, under the same flood control.
"""

from __future__ import annotations

import getpass
import logging
import queue
import re
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from agent.capture import Capturer
from agent.cohorts import CohortState
from agent.errors import AgentError, SpoolError
from agent.flood import FloodControl
from agent.judge import SentenceJudge, Utterance, Verdict
from agent.memory import release_free_memory
from agent.policy_state import PolicyState
from agent.schedule import MonitoringWindow
from agent.screen import ScreenImage, ScreenReader, ScreenText
from agent.screen import images as screen_images
from agent.screen.echo import TypedEcho
from agent.sensors.events import Click, FocusChange, KeyInput, ListenerRestarted, WindowInfo
from agent.sensors.keyboard import translate
from agent.settings import Settings
from agent.spool import NEVER_DROP, Spool
from agent.typing import Hit, TypingBuffer, context_around, hits_in
from core import envelope
from core.detect.sentences import sentences_around

__all__ = ["STOP", "Monitor"]

log = logging.getLogger(__name__)

STOP = object()  # put on the queue to end the worker
ON_SITE_RECHECK_S = 30.0  # interface addresses are asked at most this often
MAX_HELD = 50  # sealed events kept in memory while the spool's disk is full
HELD_RETRY_S = 5.0
_SENTENCE_END = re.compile(r"[.!?…。！？؟۔।]\s$")  # a sentence just ended: judge it now


@dataclass(frozen=True, slots=True)
class Trigger:
    """Why an event fires: a list rule or the model, on typed, pasted or title text."""

    rule: str
    category: str
    severity: int
    matched: str
    context: str
    start: int  # the match's offsets inside ``context``
    end: int
    source: str  # "typed" | "paste" | "title" | "screen": where the text came from
    detector: str  # "list" | "model" | "image": what fired
    score: float | None
    sentences: tuple[str, str, str]

    @classmethod
    def of_hit(cls, hit: Hit) -> Trigger:
        r = hit.match.rule
        return cls(r.id, r.category, r.severity, hit.match.matched, hit.context, hit.start,
                   hit.end, hit.source, "list", None, hit.sentences)


class CoolDown:
    """When each key (a window title) last started a cool-down; bounded to those still cooling."""

    def __init__(self) -> None:
        self._since: dict[str, float] = {}

    def cooling(self, key: str, now: float, seconds: float) -> bool:
        last = self._since.get(key)
        return last is not None and now - last < seconds

    def start(self, key: str, now: float, seconds: float) -> None:
        self._since[key] = now
        if len(self._since) > 1000:  # bounded: forget keys whose cool-down ended
            self._since = {k: v for k, v in self._since.items() if now - v < seconds}


class Monitor:
    def __init__(self, settings: Settings, device_id: str, policy: PolicyState, spool: Spool,
                 flood: FloodControl, clipboard: Callable[[], str | None],
                 on_spooled: Callable[[], None] = lambda: None, window: MonitoringWindow | None = None,
                 user: str | None = None, host: str | None = None,
                 judge: SentenceJudge | None = None, screen: ScreenReader | None = None,
                 cohorts: CohortState | None = None) -> None:
        self.queue: queue.SimpleQueue = queue.SimpleQueue()
        self._cohorts = cohorts
        self._settings = settings
        self._device_id = device_id
        self._policy = policy
        self._spool = spool
        self._flood = flood
        self._clipboard = clipboard
        self._on_spooled = on_spooled
        self._fixed_window = window
        self.user = user or getpass.getuser()
        self.host = host or socket.gethostname()
        self.window: WindowInfo | None = None
        self.events_sealed = 0
        self.inputs_seen = 0  # a count only: how many inputs the worker handled
        self.last_latency_ms: float | None = None
        self._title_fired = CoolDown()  # titles a list rule fired on
        self._buffer: TypingBuffer | None = None
        self._matcher: Any = None
        self._capturer: Capturer | None = None
        self._site_checked = -1e9
        self._hours_checked: tuple[int, int] = (-1, -1)
        self._hours_ok = True
        self._window: MonitoringWindow = window or MonitoringWindow()
        self._held: list[tuple[str, int, bytes]] = []  # sealed events the disk refused
        self._held_retry = 0.0
        self._site_ok = True
        self._was_active = True
        self._typed_at: float | None = None  # last key of text the judge has not seen yet
        self._title_judged = CoolDown()  # titles the sentence model judged
        self._typed_fired = CoolDown()  # rule + window of typed events: their echo on screen
        self._typed_echo = TypedEcho()  # words typed lately: screen lines of them go unjudged
        self._screen_repeat_s = settings.flood_window_s
        self._typing_window: WindowInfo | None = None
        self.judge = judge or SentenceJudge(self.queue.put, enabled=settings.model)
        self.screen = screen or ScreenReader(
            # off until a signed policy switches it on (_sync_policy)
            self.queue.put, enabled=False, poll_s=settings.screen_poll_s,
            interval_s=settings.screen_interval_s, settle_s=settings.screen_settle_s,
            busy_pct=settings.screen_busy_pct, on_battery=settings.screen_on_battery,
            repeat_s=settings.flood_window_s, languages=settings.screen_languages,
            images=settings.screen_images, image_threshold=settings.screen_image_threshold)
        self._thread = threading.Thread(target=self._run, name="vigil-monitor", daemon=True)

    # --- policy-derived parts -------------------------------------------------------------
    def _sync_policy(self) -> bool:
        """Rebuild the buffer and capturer when the policy changed; False if there is none."""
        matcher = self._policy.matcher
        if matcher is None:
            return False
        if matcher is not self._matcher:
            s = self._settings.with_policy(self._policy.policy)
            self._matcher = matcher
            self._flood.window_s = s.flood_window_s
            self._title_cooldown = s.title_cooldown_s
            # Text left on screen fires once per flood window (or title cool-down, if longer).
            self._screen_repeat_s = max(s.flood_window_s, s.title_cooldown_s)
            self.screen.memory.repeat_s = self.screen.detector.repeat_s = self._screen_repeat_s
            self.screen.configure(
                enabled=s.screen, interval_s=s.screen_interval_s, images=s.screen_images,
                on_battery=s.screen_on_battery,
                why_off="screen reading is switched off on this desktop (VIGIL_AGENT_SCREEN=0)"
                if not self._settings.screen else "screen reading is switched off in the policy")
            guard = self._buffer.guard if self._buffer is not None else None
            self._buffer = TypingBuffer(matcher, self._clipboard, capacity=s.buffer_capacity,
                                        context_chars=s.context_chars,
                                        max_repeat_run=s.max_repeat_run,
                                        match_injected=s.match_injected, guard=guard,
                                        on_utterance=self._utterance_ended)
            if self.window is not None:
                self._buffer.guard.window_changed(self.window.title, self.window.app)
            self._capturer = Capturer(s.image_format, s.image_quality, s.image_scale, s.all_monitors)
            self._capturer.warm_up()  # open the screen now, not on the first trigger
            self.judge.set_rules(matcher.ruleset)
            self._typed_at = None
        return True

    def _active(self, now: float) -> bool:
        """Monitoring allowed now? Hours once per clock minute, networks every 30 s."""
        # The schedule is in whole minutes (HH:MM), so one answer per minute and policy is exact
        # and spares a time-zone conversion on every key.
        minute = (int(time.time() // 60), self._policy.serial)
        if minute != self._hours_checked:
            self._window = self._fixed_window or MonitoringWindow.from_policy(self._policy.policy)
            self._hours_ok = self._window.in_hours(datetime.now(UTC))
            self._hours_checked = minute
        if not self._hours_ok:
            return False
        if now - self._site_checked > ON_SITE_RECHECK_S:
            self._site_ok = self._window.on_site()
            self._site_checked = now
        return self._site_ok

    # --- the worker -----------------------------------------------------------------------
    def start(self) -> None:
        self.screen.preload()  # before the judge's thread: see ScreenReader.preload
        self.judge.start()
        self.screen.start()
        if self._policy.matcher is not None:  # load the model now, not on the first key
            self.judge.set_rules(self._policy.matcher.ruleset)
        self._thread.start()

    def stop(self) -> None:
        self.queue.put(STOP)
        self._thread.join(10)
        self.judge.stop()
        self.screen.stop()
        if self._capturer is not None:
            self._capturer.close()

    def _run(self) -> None:
        while True:
            wait = None
            if self._typed_at is not None:  # wake when the pause is long enough to judge
                wait = max(0.0, self._typed_at + self._settings.utterance_pause_s - time.monotonic())
            try:
                item = self.queue.get(timeout=wait)
            except queue.Empty:
                item = None
            if item is STOP:
                break
            try:
                if item is None:
                    self._paused()
                else:
                    self.handle(item)
            except AgentError as exc:
                log.error("%s", exc)
            except Exception:  # a bug must not end monitoring: log it and go on
                log.exception("unexpected error while handling input")

    # --- the sentence judge ---------------------------------------------------------------
    def _submit(self, text: str, kind: str, at: float, final: bool) -> None:
        # Typed text belongs to the window it was typed in, even when a focus change ended it.
        window = self.window if kind == "title" else self._typing_window
        if kind in ("typed", "paste"):
            self._typed_echo.typed(text, at)
        self.judge.submit(Utterance(text, kind, window, at, final))  # type: ignore[arg-type]

    def _utterance_ended(self, text: str, kind: str) -> None:
        """The typing buffer finished an utterance (or read a paste): the judge gets it whole."""
        self._typed_at = None
        self._submit(text, kind, time.monotonic(), final=True)

    def _paused(self) -> None:
        """No key for ``utterance_pause_s``: judge what is typed so far (the utterance goes on)."""
        at, self._typed_at = self._typed_at, None
        if self._buffer is not None and at is not None and self._buffer.judgeable:
            self._submit(self._buffer.text, "typed", at, final=False)

    def _after_key(self, ev: KeyInput, now: float) -> None:
        assert self._buffer is not None
        if not self.judge.active or not self._buffer.text:
            return
        if self._buffer.judgeable and _SENTENCE_END.search(self._buffer.text):
            self._typed_at = None
            self._submit(self._buffer.text, "typed", ev.at or now, final=False)
        else:
            self._typed_at = ev.at or now

    def _judge_title(self, window: WindowInfo | None, now: float) -> None:
        if window is None or not window.title.strip() or not self.judge.active:
            return
        if self._title_judged.cooling(window.title, now, self._title_cooldown):
            return
        self._title_judged.start(window.title, now, self._title_cooldown)
        self._submit(window.title, "title", now, final=True)

    def _on_verdict(self, verdict: Verdict) -> None:
        utt = verdict.utterance
        width = self._settings.context_chars
        for d in verdict.detections:
            context, start, end = context_around(utt.text, d.start, d.end, width)
            trigger = Trigger(d.rule, d.category, d.severity, d.matched, context, start, end,
                              utt.kind, "model", d.score,
                              sentences_around(utt.text, d.start, d.end))
            self._fire(trigger, utt.at, utt.window)

    def _on_screen(self, seen: ScreenText | ScreenImage) -> None:
        """New lines read from the screen: the lists now, the sentence model on its thread; both
        fire with source ``screen`` under the same flood control as typed text. The image check
        fires ``image:nudity`` (agent/screen/images.py) under it too."""
        if isinstance(seen, ScreenImage):
            self._fire(Trigger(screen_images.RULE, screen_images.CATEGORY, screen_images.SEVERITY,
                               seen.label, "", 0, 0, "screen", "image", seen.score, ("", "", "")),
                       seen.at, seen.window)
            return
        hits = hits_in(self._matcher.match(seen.text), seen.text, "screen",
                       self._settings.context_chars)
        for hit in hits:
            self._fire(Trigger.of_hit(hit), seen.at, seen.window)
        live = self._buffer.text if self._buffer is not None else ""
        text = self._typed_echo.new_lines(seen.text, live)  # the pupil's own words: judged typed
        if text:
            self.judge.submit(Utterance(text, "screen", seen.window, seen.at,  # type: ignore[arg-type]
                                        final=True))

    def handle(self, item: Any) -> None:
        ev = translate(item) if isinstance(item, tuple) else item
        if isinstance(ev, Verdict):
            if self._sync_policy() and self._active(time.monotonic()):
                self._on_verdict(ev)
            return
        if isinstance(ev, ScreenText | ScreenImage):
            if self._sync_policy():
                # Also when no key or focus change came since the schedule ended: the reader
                # stops grabbing after the first read the monitor throws away.
                self.screen.active = active = self._active(time.monotonic())
                if active:
                    self._on_screen(ev)
            return
        self.inputs_seen += 1
        if isinstance(ev, ListenerRestarted):
            if self._buffer is not None:
                self._buffer.reset_keys()
            return  # counted by the hooks, reported in the heartbeat
        if isinstance(ev, KeyInput) and not ev.pressed:
            # A release only updates which keys and modifiers are held: half of all input,
            # so it skips the policy, schedule and spool checks below.
            if self._buffer is not None:
                self._buffer.on_key(ev)
            return
        if isinstance(ev, FocusChange):
            self.window = ev.window
            self.screen.window_changed(ev.window, ev.at or time.monotonic())
            # The id only: a title is what the user is doing and stays out of the log.
            log.debug("focus: window %#x", ev.window.wid if ev.window else 0)
        if not self._sync_policy():
            return
        assert self._buffer is not None
        now = time.monotonic()
        self._retry_held(now)
        self.screen.active = active = self._active(now)
        if not active:
            if self._was_active:
                self._buffer.end_utterance("focus", report=False)  # forget it all
                self._typed_at = None
                self._was_active = False
            return
        self._was_active = True
        hits: list[Hit] = []
        if isinstance(ev, KeyInput):
            hits = self._buffer.on_key(ev)
            self._after_key(ev, now)
        elif isinstance(ev, Click):
            hits = self._buffer.end_utterance("click")
        elif isinstance(ev, FocusChange):
            title, app = (ev.window.title, ev.window.app) if ev.window else ("", "")
            hits = self._buffer.window_changed(title, app) + self._title_hits(ev.window, now)
            self._typing_window = ev.window
            self._judge_title(ev.window, now)
        for hit in hits:
            self._fire(Trigger.of_hit(hit), getattr(ev, "at", now) or now, self.window)

    def _spool_or_hold(self, event_id: str, severity: int, sealed: bytes) -> None:
        """Spool a sealed event; if the disk refuses, hold it (sealed) in memory and retry."""
        try:
            self._spool.put(event_id, severity, sealed)
        except SpoolError as exc:
            log.error("%s", exc)
            self._held.append((event_id, severity, sealed))
            if len(self._held) > MAX_HELD:  # bounded: the least severe, oldest, goes first
                victim = min(range(len(self._held)), key=lambda i: (self._held[i][1], i))
                if self._held[victim][1] < NEVER_DROP:  # severity 4 and 5 are never dropped
                    del self._held[victim]
                    self._spool.dropped += 1

    def _retry_held(self, now: float) -> None:
        if not self._held or now - self._held_retry < HELD_RETRY_S:
            return
        self._held_retry = now
        held, self._held = self._held, []
        for i, (event_id, severity, sealed) in enumerate(held):
            try:
                self._spool.put(event_id, severity, sealed)
            except SpoolError:
                self._held = held[i:]
                return
        log.info("the spool took the %d event(s) held in memory", len(held))
        self._on_spooled()

    def _title_hits(self, window: WindowInfo | None, now: float) -> list[Hit]:
        if window is None or not window.title.strip():
            return []
        title = window.title
        if self._title_fired.cooling(title, now, self._title_cooldown):
            return []
        matches = self._matcher.match(title)
        if matches:
            self._title_fired.start(title, now, self._title_cooldown)
        return hits_in(matches, title, "title", self._settings.context_chars)

    # --- firing ----------------------------------------------------------------------------
    def _echo(self, t: Trigger, window: WindowInfo | None) -> bool:
        """True for a screen trigger of a rule the pupil's typing fired in that window within
        the repeat window: what they typed, now shown back to them, is not another event. The
        sentence model's judgement of the shown line is an echo of any typed event of its
        category there: the typed sentence's own model hit was dropped for the list hit
        (core.detect.combine), so its rule never went into the memory."""
        if window is None or t.source not in ("typed", "paste", "screen"):
            return False
        now = time.monotonic()
        rule_key, category_key = f"{t.rule}\0{window.wid}", f"\0{t.category}\0{window.wid}"
        if t.source == "screen":
            key = category_key if t.detector == "model" else rule_key
            return self._typed_fired.cooling(key, now, self._screen_repeat_s)
        self._typed_fired.start(rule_key, now, self._screen_repeat_s)
        self._typed_fired.start(category_key, now, self._screen_repeat_s)
        return False

    def _fire(self, t: Trigger, key_at: float, window: WindowInfo | None) -> None:
        if self._echo(t, window):
            return
        wall = datetime.now(UTC)
        decision = self._flood.decide(t.rule, self.user, time.monotonic(), wall)
        if not decision.is_new:
            self._on_spooled()
            return
        assert self._capturer is not None and self._policy.policy is not None
        t_capture = time.monotonic()
        # The screen as it is now (under the window in front); the header names the window the
        # text was seen in.
        front = self.window or window
        image = self._capturer.grab(front.rect if front else None)
        t_seal = time.monotonic()
        # The pupil's year and form from the school's cohort map (agent.cohorts), in the clear
        # for routing; the login name itself stays in the sealed header.
        year, form = self._cohorts.lookup(self.user) if self._cohorts is not None else ("", "")
        meta = envelope.Metadata(event_id=decision.event_id, device_id=self._device_id,
                                 time=wall, category=t.category, severity=t.severity,
                                 rule=t.rule, source=t.source, year=year, form=form)
        before, trigger, after = t.sentences
        header = {
            "user": self.user, "host": self.host,
            "title": window.title if window else "", "app": window.app if window else "",
            "context": t.context,
            "match": {"start": t.start, "end": t.end, "text": t.matched},
            "source": t.source, "detector": t.detector, "score": t.score,
            "sentences": {"before": before, "trigger": trigger, "after": after},
            "count": 1, "media_type": image.media_type,
            "width": image.width, "height": image.height,
        }
        sealed = envelope.seal(meta, header, image.data, self._policy.policy.keyholders)
        del image, header
        t_spool = time.monotonic()
        self._spool_or_hold(decision.event_id, t.severity, sealed)
        done = time.monotonic()
        del sealed
        release_free_memory()
        self.events_sealed += 1
        self.last_latency_ms = (done - key_at) * 1000
        score = f", score {t.score:.2f}" if t.score is not None else ""
        log.info("rule %s (%s, severity %d%s) fired; event %s spooled %.0f ms after the key "
                 "(queue %.0f, capture %.0f, seal %.0f, spool %.0f ms)",
                 t.rule, t.category, t.severity, score, decision.event_id, self.last_latency_ms,
                 (t_capture - key_at) * 1000, (t_seal - t_capture) * 1000,
                 (t_spool - t_seal) * 1000, (done - t_spool) * 1000)
        self._on_spooled()
