"""agent.judge and the typing buffer's hand-off: what reaches the sentence model, and when.

The model is a stand-in that records what it was asked and fires on sentences holding "sad";
the real model in the real agent is tests/integration/test_agent_model.py.
"""

from __future__ import annotations

import queue
from pathlib import Path

from agent.judge import LISTS_AND_MODEL, LISTS_ONLY, MODEL_UNAVAILABLE, SentenceJudge, Utterance
from agent.sensors.events import KeyInput
from agent.typing import TypingBuffer
from core.detect import CombinedDetector, Detection, ListDetector, split_sentences
from core.matcher import Matcher
from core.rules import RuleSet, loads

RULES_TOML = '''
category = "suicide"
[[rule]]
id = "suicide.kill_myself"
phrase = "kill myself"
severity = 5
'''
RULES = loads(RULES_TOML)


class RecordingModel:
    def __init__(self) -> None:
        self.asked: list[str] = []

    def detect(self, text: str, kind: str = "typed") -> list[Detection]:
        self.asked.append(text)
        return [Detection("model:suicide", "suicide", 4, a, b, text[a:b], "model", 0.9)
                for a, b in split_sentences(text) if "sad" in text[a:b]]


def judge_with(stand_in: RecordingModel | None, unavailable: str | None = None
               ) -> tuple[SentenceJudge, queue.SimpleQueue]:
    out: queue.SimpleQueue = queue.SimpleQueue()

    def builder(ruleset: RuleSet, model: bool = True, head_path: Path | None = None
                ) -> CombinedDetector:
        return CombinedDetector(ListDetector(ruleset), stand_in, unavailable)  # type: ignore[arg-type]

    judge = SentenceJudge(out.put, builder=builder)
    judge.start()
    judge.set_rules(RULES)
    assert judge.wait_ready(10)
    return judge, out


def test_each_sentence_is_judged_once_per_utterance_and_forgotten_at_its_end() -> None:
    model = RecordingModel()
    judge, out = judge_with(model)
    try:
        text = "so tired. i am sad"
        assert judge.submit(Utterance("so tired.", "typed", None, 1.0, final=False))
        assert judge.submit(Utterance(text, "typed", None, 2.0, final=True))
        assert judge.submit(Utterance(text, "typed", None, 3.0, final=True))
        verdicts = [out.get(timeout=10), out.get(timeout=10)]
    finally:
        judge.stop()
    # "so tired." once in the first utterance; both sentences again after it ended.
    assert model.asked == ["so tired.", "i am sad", "so tired.", "i am sad"]
    (d,) = verdicts[0].detections
    assert (d.start, d.end, d.matched) == (10, 18, "i am sad")
    assert text[d.start:d.end] == d.matched
    assert judge.state == LISTS_AND_MODEL and judge.model_ms_median() is not None


def test_a_list_hit_in_the_sentence_leaves_nothing_for_the_model() -> None:
    judge, out = judge_with(RecordingModel())
    try:
        judge.submit(Utterance("i am sad and want to kill myself", "typed", None, 1.0))
        judge.submit(Utterance("i am sad", "typed", None, 2.0))
        verdict = out.get(timeout=10)
    finally:
        judge.stop()
    assert verdict.utterance.text == "i am sad"


def test_an_unavailable_model_is_reported_and_nothing_is_queued() -> None:
    judge, _ = judge_with(None, unavailable="sentence model unavailable (test): lists alone")
    try:
        assert judge.state == MODEL_UNAVAILABLE
        assert judge.note == "sentence model unavailable (test): lists alone"
        assert not judge.submit(Utterance("i am sad", "typed", None, 1.0))
    finally:
        judge.stop()


def test_switched_off_the_judge_says_so_and_takes_nothing() -> None:
    judge = SentenceJudge(lambda v: None, enabled=False)
    assert (judge.state, judge.active) == (LISTS_ONLY, False)
    assert not judge.submit(Utterance("i am sad", "typed", None, 1.0))


# --- the typing buffer's hand-off ---------------------------------------------------------------

def press(ch: str | None = None, name: str | None = None) -> list[KeyInput]:
    return [KeyInput(True, ch, name), KeyInput(False, ch, name)]


def typed(buffer: TypingBuffer, text: str) -> None:
    for ch in text:
        for k in press(name="space") if ch == " " else press(ch):
            buffer.on_key(k)


def test_a_finished_utterance_and_a_paste_are_handed_on_whole() -> None:
    got: list[tuple[str, str]] = []
    buffer = TypingBuffer(Matcher(RULES), lambda: "pasted words here", on_utterance=lambda t, k:
                          got.append((t, k)))
    typed(buffer, "hello there")
    assert buffer.judgeable
    for k in press(name="enter"):
        buffer.on_key(k)
    for k in [KeyInput(True, None, "ctrl_l"), *press("v"), KeyInput(False, None, "ctrl_l")]:
        buffer.on_key(k)
    assert got == [("hello there", "typed"), ("pasted words here", "paste")]


def test_a_password_and_the_field_after_a_username_never_reach_the_model() -> None:
    got: list[str] = []
    buffer = TypingBuffer(Matcher(RULES), lambda: None, on_utterance=lambda t, k: got.append(t))
    typed(buffer, "jsmith42")
    assert not buffer.judgeable  # a single token: may be a password the guard has yet to judge
    buffer.on_key(KeyInput(True, None, "tab"))
    typed(buffer, "my secret words")  # the field after a user name: a password field
    assert not buffer.judgeable
    buffer.on_key(KeyInput(True, None, "enter"))
    typed(buffer, "Tr0ub4dor&3")
    buffer.on_key(KeyInput(True, None, "enter"))
    assert got == ["jsmith42"]  # a user name is not a secret
    buffer.guard.window_changed("Sign in - School portal", "firefox")
    typed(buffer, "hello there")
    assert not buffer.judgeable


def test_forgetting_an_utterance_hands_nothing_on() -> None:
    got: list[str] = []
    buffer = TypingBuffer(Matcher(RULES), lambda: None, on_utterance=lambda t, k: got.append(t))
    typed(buffer, "hello there")
    assert buffer.end_utterance("focus", report=False) == []
    assert got == []


def test_new_rules_never_wait_on_a_full_queue_and_the_latest_are_used() -> None:
    from agent.judge import QUEUE_MAX

    built: list[RuleSet] = []

    def builder(ruleset: RuleSet, model: bool = True, head_path: Path | None = None
                ) -> CombinedDetector:
        built.append(ruleset)
        return CombinedDetector(ListDetector(ruleset), RecordingModel())  # type: ignore[arg-type]

    out: queue.SimpleQueue = queue.SimpleQueue()
    judge = SentenceJudge(out.put, builder=builder)
    judge.set_rules(RULES)
    # The judge is not running yet: the queue fills up (the first rules' nudge holds a slot).
    accepted = 0
    while judge.submit(Utterance(f"line {accepted}", "typed", None, 1.0)):
        accepted += 1
    assert accepted == QUEUE_MAX - 1
    newer = loads(RULES_TOML.replace("kill myself", "end it all"))
    judge.set_rules(newer)  # returns at once although the queue is full
    judge.start()
    try:
        assert judge.wait_ready(10)
        judge.submit(Utterance("i am sad", "typed", None, 2.0))
        assert out.get(timeout=10).utterance.text == "i am sad"
    finally:
        judge.stop()
    assert built == [newer]  # the model loaded once, with the rules offered last
    assert judge.skipped == 1
