"""The sentence model on the agent: finished utterances in, model detections out, off the keys.

Why a thread of its own: the monitor's worker handles every key, and one encoder call (about
18 ms on one core) on it would hold up the keys behind it. The monitor hands the judge whole
utterances (Enter, a sentence end, a pause in typing, a click, a focus change, a paste, a window
title), never single keys, through a small bounded queue. What the judge finds goes back on the
monitor's queue as a :class:`Verdict`, so flood control, capture and sealing stay on one thread.

The model loads once, on this thread, when the agent starts (about 0.2 s, 50 MB). If it cannot
load, the judge says so in one line, the lists go on alone, and :attr:`SentenceJudge.state` says
so in every heartbeat, where the devices page shows it.

What is kept: an utterance's text lives in the queue until it is judged, then goes. To spare
re-encoding a sentence judged at a pause when Enter follows, the judge remembers the *hashes* of
the sentences it judged in the current utterance (never their text) and forgets them when the
utterance ends.
"""

from __future__ import annotations

import hashlib
import logging
import os
import queue
import statistics
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from agent.sensors.events import WindowInfo
from core.detect import CombinedDetector, Detection, build, split_sentences
from core.detect.model import HEAD_PATH
from core.rules import RuleSet

__all__ = ["LISTS_AND_MODEL", "LISTS_ONLY", "MODEL_UNAVAILABLE", "SentenceJudge", "Utterance",
           "Verdict"]

log = logging.getLogger(__name__)

# The detection state the heartbeat reports (collector/api/heartbeat.py validates these).
LISTS_AND_MODEL = "lists+model"
LISTS_ONLY = "lists"  # the model is switched off in the agent's settings
MODEL_UNAVAILABLE = "lists (model unavailable)"
QUEUE_MAX = 64  # utterances waiting; a burst beyond this is judged by the lists alone

_STOP = object()
_RULES = object()

UtteranceKind = Literal["typed", "paste", "title"]


@dataclass(frozen=True, slots=True)
class Utterance:
    """Text to judge, where it was seen and when; ``final`` ends the utterance (Enter, focus...)."""

    text: str
    kind: UtteranceKind
    window: WindowInfo | None
    at: float  # time.monotonic() of the key, paste or focus change that completed it
    final: bool = True


@dataclass(frozen=True, slots=True)
class Verdict:
    """What the model added on an utterance; offsets index ``utterance.text``."""

    utterance: Utterance
    detections: tuple[Detection, ...]


def _lower_priority() -> None:
    """Nice this thread (Linux: threads have their own nice value): a list hit's capture and
    the pupil's own programs come before a sentence the model can judge a moment later."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)
    except (AttributeError, OSError):  # Windows has no setpriority; a refusal changes nothing
        pass


def _digest(kind: str, sentence: str) -> bytes:
    return hashlib.blake2b(f"{kind}\0{sentence}".encode(), digest_size=16).digest()


class SentenceJudge:
    """Runs :meth:`CombinedDetector.model_additions` on utterances, one at a time, on its thread."""

    def __init__(self, deliver: Callable[[Verdict], None], enabled: bool = True,
                 head_path: Path = HEAD_PATH,
                 builder: Callable[..., CombinedDetector] = build) -> None:
        self._deliver = deliver
        self._enabled = enabled
        self._head_path = head_path
        self._build = builder
        self._queue: queue.Queue[Any] = queue.Queue(QUEUE_MAX)
        self._detector: CombinedDetector | None = None
        self._rules: RuleSet | None = None  # the latest rules offered
        self._pending_rules: RuleSet | None = None  # offered, not yet taken by the judge
        self._lock = threading.Lock()
        self._seen: set[bytes] = set()
        self._ready = threading.Event()
        self.state = LISTS_AND_MODEL if enabled else LISTS_ONLY
        self.note = "" if enabled else "the sentence model is switched off (VIGIL_AGENT_MODEL=0)"
        self.judged = 0  # sentences encoded
        self.skipped = 0  # utterances not judged because the queue was full
        self.timings_ms: deque[float] = deque(maxlen=512)  # wall time per utterance judged
        self.cpu_ms: deque[float] = deque(maxlen=512)  # this thread's CPU time per utterance
        self._thread = threading.Thread(target=self._run, name="vigil-judge", daemon=True)

    # --- the monitor's side -----------------------------------------------------------------
    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        try:
            self._queue.put(_STOP, timeout=2)
        except queue.Full:
            pass
        self._thread.join(10)

    def wait_ready(self, timeout: float) -> bool:
        """True once the model has loaded, or it is known that it will not."""
        return self._ready.wait(timeout)

    @property
    def active(self) -> bool:
        return self.state == LISTS_AND_MODEL

    def set_rules(self, ruleset: RuleSet) -> None:
        """The policy changed: judge with its lists, unless phrases and exclusions from now on.

        Never blocks the monitor: the rules wait in one slot that the judge reads before its next
        utterance; the wake-up item is only a nudge, and a full queue nudges it soon enough."""
        with self._lock:
            if ruleset is self._rules:
                return
            self._rules = self._pending_rules = ruleset
        try:
            self._queue.put_nowait(_RULES)
        except queue.Full:
            pass

    def submit(self, utterance: Utterance) -> bool:
        """Queue an utterance; False (and counted) if the judge is off or far behind."""
        if not self.active or not utterance.text.strip():
            return False
        try:
            self._queue.put_nowait(utterance)
            return True
        except queue.Full:
            self.skipped += 1
            return False

    def model_ms_median(self) -> float | None:
        return statistics.median(self.timings_ms) if self.timings_ms else None

    def model_cpu_ms_median(self) -> float | None:
        """CPU time, not wall time: the judge runs at nice 10, so while the pupil types, other
        work comes first and the wall time stretches without costing more."""
        return statistics.median(self.cpu_ms) if self.cpu_ms else None

    # --- the judge's thread -----------------------------------------------------------------
    def _load(self, ruleset: RuleSet) -> None:
        self._detector = self._build(ruleset, model=self._enabled, head_path=self._head_path)
        if self._enabled and self._detector.model is None:
            self.state = MODEL_UNAVAILABLE
            self.note = self._detector.unavailable or "the sentence model did not load"
            log.warning("%s", self.note)
        elif self._enabled:
            log.info("sentence model loaded: judging finished utterances and window titles")
        self._ready.set()

    def _run(self) -> None:
        _lower_priority()
        while True:
            item = self._queue.get()
            if item is _STOP:
                break
            try:
                with self._lock:
                    rules, self._pending_rules = self._pending_rules, None
                if rules is not None:
                    if self._detector is None:
                        self._load(rules)
                    else:
                        self._detector = self._detector.with_rules(rules)
                if item is not _RULES and self._detector is not None \
                        and self._detector.model is not None:
                    self._judge(item)
            except Exception:  # a bug must not end judging: log it (no text) and go on
                log.exception("unexpected error while judging an utterance")

    def _judge(self, utt: Utterance) -> None:
        assert self._detector is not None
        t0, c0 = time.perf_counter(), time.thread_time()
        found: list[Detection] = []
        for start, end in split_sentences(utt.text):
            sentence = utt.text[start:end]
            key = _digest(utt.kind, sentence)
            if key in self._seen:
                continue
            if utt.kind != "title":  # a title's repeats are the monitor's cool-down's job
                self._seen.add(key)
            self.judged += 1
            for d in self._detector.model_additions(sentence, utt.kind):
                found.append(Detection(d.rule, d.category, d.severity, d.start + start,
                                       d.end + start, d.matched, d.source, d.score))
        if utt.final and utt.kind != "title":
            self._seen.clear()
        self.timings_ms.append((time.perf_counter() - t0) * 1000)
        self.cpu_ms.append((time.thread_time() - c0) * 1000)
        if found:
            self._deliver(Verdict(utt, tuple(found)))
