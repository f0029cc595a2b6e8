"""core.matcher: one automaton, one-shot and streaming, whole words, obfuscations, cancellers."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.matcher import KEYS, Match, Matcher
from core.rules import RuleSet, load_dirs

DATA = Path(__file__).resolve().parent.parent / "data"


@pytest.fixture(scope="module")
def matcher() -> Matcher:
    return Matcher(load_dirs(DATA / "wordlists_basic"))


@pytest.fixture(scope="module")
def traps() -> Matcher:
    return Matcher(load_dirs(DATA / "wordlists_traps"))


def ids(found: list[Match]) -> list[str]:
    return [m.rule.id for m in found]


def spans(found: list[Match]) -> list[tuple[str, int, int, str]]:
    return [(m.rule.id, m.start, m.end, m.matched) for m in found]


# --------------------------------------------------------------------------- one-shot


@pytest.mark.parametrize("text", ["assessment", "therapist", "Sussex", "cocktail", "skillset",
                                  "analysis", "Scunthorpe", "classic", "passion", "killer whale",
                                  "as", "wed", "looser", "I was skilled", "massive"])
def test_scunthorpe_words_do_not_fire(matcher: Matcher, text: str) -> None:
    assert matcher.match(text) == []


@pytest.mark.parametrize(
    ("text", "matched"),
    [
        ("I will kill you", "kill"),
        ("I will k i l l you", "k i l l"),
        ("I will k.i.l.l you", "k.i.l.l"),
        ("I will k-i-l-l you", "k-i-l-l"),
        ("I will KILLLLLL you", "KILLLLLL"),
        ("I will k1ll you", "k1ll"),
        ("I will k!ll you", "k!ll"),
        ("I will k\u0456ll you", "k\u0456ll"),      # Cyrillic i
        ("I will ｋｉｌｌ you", "ｋｉｌｌ"),            # fullwidth
        ("I will ki\u200bll you", "ki\u200bll"),    # zero-width space
        ("I will kíll you!", "kíll"),
        ("kill!!!", "kill"),
    ],
)
def test_obfuscated_kill_fires_and_shows_the_original(matcher: Matcher, text: str,
                                                      matched: str) -> None:
    found = [m for m in matcher.match(text) if m.rule.id == "violence.kill"]
    assert [m.matched for m in found] == [matched]
    assert text[found[0].start:found[0].end] == matched


def test_censored_words_match_the_rule_they_hide(matcher: Matcher) -> None:
    assert spans(matcher.match("what a l*ser!")) == [("bullying.loser", 7, 12, "l*ser")]
    assert spans(matcher.match("k*i*l*l yourself")) == [
        ("violence.kill", 0, 7, "k*i*l*l"),
        ("bullying.kill_yourself", 0, 16, "k*i*l*l yourself"),
    ]
    assert spans(matcher.match("*loser*")) == [("bullying.loser", 1, 6, "loser")]
    assert spans(matcher.match("l*s*r")) == [("bullying.loser", 0, 5, "l*s*r")]
    assert matcher.match("x*ser") == []


def test_repeated_letters_are_confirmed_against_the_original(matcher: Matcher) -> None:
    assert ids(matcher.match("ass")) == ["pornography.ass"]
    assert ids(matcher.match("asssss")) == ["pornography.ass"]
    assert ids(matcher.match("a$$")) == ["pornography.ass"]
    assert matcher.match("as") == []
    assert ids(matcher.match("weed")) == ["drugs.weed"]
    assert ids(matcher.match("weeeeed")) == ["drugs.weed"]
    assert matcher.match("we wed") == []
    assert ids(matcher.match("loser")) == ["bullying.loser"]
    assert ids(matcher.match("loooooser")) == ["bullying.loser"]
    assert matcher.match("looser") == []


def test_multi_word_phrases_and_their_joined_form(matcher: Matcher) -> None:
    assert spans(matcher.match("just kill   yourself")) == [
        ("violence.kill", 5, 9, "kill"),
        ("bullying.kill_yourself", 5, 20, "kill   yourself"),
    ]
    assert ids(matcher.match("#killyourself")) == ["bullying.kill_yourself"]
    # Spaced-out letters are also split back into the rules' words: "kill" "yourself".
    assert ids(matcher.match("k i l l y o u r s e l f")) == ["violence.kill",
                                                           "bullying.kill_yourself"]


def test_embedded_stems_match_inside_words(matcher: Matcher) -> None:
    assert spans(matcher.match("feeling suicidal")) == [("suicide.stem", 8, 14, "suicid")]
    assert ids(matcher.match("SUICIDE")) == ["suicide.stem"]
    assert ids(matcher.match("su1c1dal")) == ["suicide.stem"]


def test_a_dot_or_hyphen_inside_a_word_does_not_hide_it(matcher: Matcher) -> None:
    assert spans(matcher.match("feeling sui.cidal")) == [("suicide.stem", 8, 15, "sui.cid")]
    assert spans(matcher.match("I will k-ill you")) == [("violence.kill", 7, 12, "k-ill")]
    # The words stay words too: "kill.myself" is still "kill myself".
    assert ids(matcher.match("kill.myself")) == ["violence.kill", "suicide.kill_myself"]


def test_unless_context_cancels_only_its_own_rule(matcher: Matcher) -> None:
    assert ids(matcher.match("I will kill myself")) == ["violence.kill", "suicide.kill_myself"]
    assert ids(matcher.match("I kill myself laughing")) == ["violence.kill"]
    assert matcher.match("we just kill time") == []
    assert matcher.match("weed the garden") == []
    assert ids(matcher.match("weed the gardens")) == ["drugs.weed"]


def test_exclusions_cancel_every_rule_inside_them(matcher: Matcher) -> None:
    assert matcher.match("Year 9 sex education") == []
    assert matcher.match("S.E.X education") == []
    assert ids(matcher.match("sex educator")) == ["pornography.sex"]


def test_ambiguous_one_follows_the_rule_vocabulary(matcher: Matcher) -> None:
    assert spans(matcher.match("a1coho1")) == [("drugs.alcohol", 0, 7, "a1coho1")]


def test_match_offsets_and_as_dict(matcher: Matcher) -> None:
    text = "Ｙｏｕ ａｒｅ ａ ｌｏｓｅｒ, k i l l yourself"
    found = matcher.match(text)
    for m in found:
        assert m.matched == text[m.start:m.end]
    assert found[0].as_dict() == {"rule": "bullying.loser", "category": "bullying",
                                  "severity": 2, "start": 10, "end": 15, "matched": "ｌｏｓｅｒ"}


def test_an_empty_ruleset_matches_nothing() -> None:
    m = Matcher(RuleSet())
    assert m.match("kill") == []
    s = m.stream()
    assert s.feed("k") == [] and s.feed(" ") == [] and s.end_utterance() == []


# --------------------------------------------------------------------------- streaming


def type_text(stream, text: str) -> list[Match]:
    out: list[Match] = []
    for ch in text:
        out.extend(stream.feed(ch))
    return out


def test_stream_reports_when_the_word_ends_and_only_once(matcher: Matcher) -> None:
    s = matcher.stream()
    assert type_text(s, "you are a lose") == []
    assert type_text(s, "r") == []                         # the word may go on ("losers")
    assert spans(s.feed(" ")) == [("bullying.loser", 10, 15, "loser")]
    assert type_text(s, "and more words ") == []          # never reported twice
    assert s.end_utterance() == []
    assert s.text == ""


def test_stream_reports_the_last_word_at_end_of_utterance(matcher: Matcher) -> None:
    s = matcher.stream()
    assert type_text(s, "what a loser") == []
    assert spans(s.end_utterance()) == [("bullying.loser", 7, 12, "loser")]


def test_stream_waits_for_context_that_could_cancel(matcher: Matcher) -> None:
    s = matcher.stream()
    assert ids(type_text(s, "I will kill ")) == []           # "kill time" is harmless
    assert ids(type_text(s, "myself ")) == ["violence.kill"]  # "kill myself laughing" too
    assert ids(type_text(s, "now")) == []                    # "now" may still be "nowt"...
    assert ids(type_text(s, " ")) == ["suicide.kill_myself"]
    s = matcher.stream()
    assert ids(type_text(s, "I kill myself laughing ")) == ["violence.kill"]
    assert s.end_utterance() == []
    s = matcher.stream()
    assert ids(type_text(s, "sex education ")) == []
    assert s.end_utterance() == []


def test_stream_waits_after_a_dot_that_may_join_the_next_word(matcher: Matcher) -> None:
    s = matcher.stream()
    assert type_text(s, "you are a los.") == []
    assert spans(type_text(s, "er ")) == [("bullying.loser", 10, 16, "los.er")]


def test_stream_joins_spaced_letters_before_reporting(matcher: Matcher) -> None:
    s = matcher.stream()
    assert type_text(s, "k i l ") == []
    assert type_text(s, "l ") == []                   # another letter could follow
    found = type_text(s, "you ")
    assert spans(found) == [("violence.kill", 0, 7, "k i l l")]


def test_backspace_corrects_a_typo(matcher: Matcher) -> None:
    s = matcher.stream()
    type_text(s, "losx")
    assert s.key("backspace") == []
    assert s.text == "los"
    assert spans(type_text(s, "er ")) == [("bullying.loser", 0, 5, "loser")]


def test_backspace_removes_a_match_and_retyping_reports_it_again(matcher: Matcher) -> None:
    s = matcher.stream()
    assert ids(type_text(s, "loser ")) == ["bullying.loser"]
    for _ in range(3):
        s.key("backspace")
    assert s.text == "los"
    assert ids(type_text(s, "er ")) == ["bullying.loser"]


def test_cursor_keys_edit_in_the_middle(matcher: Matcher) -> None:
    s = matcher.stream()
    assert type_text(s, "you lose now") == []
    for _ in range(4):
        s.key("left")
    assert s.cursor == 8
    assert s.feed("r") == []                    # the caret is still in the word
    assert s.text == "you loser now"
    found = s.key("end")
    assert spans(found) == [("bullying.loser", 4, 9, "loser")]
    assert s.end_utterance() == []


def test_typing_a_space_in_the_middle_ends_that_word(matcher: Matcher) -> None:
    s = matcher.stream()
    type_text(s, "sayloser")
    s.key("home")
    for _ in range(3):
        s.key("right")
    assert spans(s.feed(" ")) == [("bullying.loser", 4, 9, "loser")]
    assert s.text == "say loser"


def test_delete_and_home(matcher: Matcher) -> None:
    s = matcher.stream()
    type_text(s, "xloser now")
    s.key("home")
    assert s.key("delete") == []
    assert s.text == "loser now"
    assert ids(s.key("end")) == ["bullying.loser"]
    assert s.key("backspace") == [] and s.key("left") == []


def test_keys_at_the_edges_are_harmless(matcher: Matcher) -> None:
    s = matcher.stream()
    assert s.key("backspace") == [] and s.key("delete") == []
    assert s.key("left") == [] and s.key("home") == [] and s.key("right") == []
    assert set(KEYS) == {"backspace", "delete", "left", "right", "home", "end"}
    with pytest.raises(ValueError, match="unknown key 'page_up'"):
        s.key("page_up")


def test_buffer_is_bounded_and_offsets_follow_it(matcher: Matcher) -> None:
    s = matcher.stream(capacity=64)
    type_text(s, "blah " * 200)
    assert len(s.text) == 64
    found = type_text(s, "you loser ")
    assert len(s.text) == 64
    assert [m.matched for m in found] == ["loser"]
    assert s.text[found[0].start:found[0].end] == "loser"
    with pytest.raises(ValueError):
        matcher.stream(capacity=0)


def test_feed_accepts_a_pasted_string(matcher: Matcher) -> None:
    s = matcher.stream()
    assert ids(s.feed("what a loser ")) == ["bullying.loser"]


# --------------------------------------------------------------------------- properties

ALPHABET = list("abkilwedosrt 1.-!|*$@_\u0456\u200bKILAB  ") + ["\n", "é", "\u0301"]
rich_text = st.lists(st.one_of(st.sampled_from(ALPHABET), st.sampled_from(ALPHABET),
                               st.characters()), max_size=300).map("".join)


@settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.one_of(st.text(max_size=200), rich_text))
def test_matched_is_always_the_original_substring(traps: Matcher, text: str) -> None:
    for m in traps.match(text):
        assert 0 <= m.start < m.end <= len(text)
        assert m.matched == text[m.start:m.end]


@settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
@given(rich_text)
def test_stream_and_one_shot_agree_on_the_same_text(traps: Matcher, text: str) -> None:
    s = traps.stream(capacity=1024)
    streamed = type_text(s, text) + s.end_utterance()
    key = sorted((m.rule.id, m.start, m.end, m.matched) for m in streamed)
    assert key == sorted((m.rule.id, m.start, m.end, m.matched) for m in traps.match(text))


EDIT = st.sampled_from([f"<{k}>" for k in KEYS])
ops = st.lists(st.one_of(*([st.sampled_from(ALPHABET[:-3])] * 4), EDIT), max_size=150)


@settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
@given(ops)
def test_stream_with_edits_reports_real_matches_and_misses_none(traps: Matcher,
                                                                keys: list[str]) -> None:
    s = traps.stream(capacity=1024)
    reported: list[tuple[str, str]] = []
    for k in keys:
        found = s.key(k[1:-1]) if k.startswith("<") else s.feed(k)
        now = {(m.rule.id, m.start, m.end) for m in traps.match(s.text)}
        for m in found:
            assert m.matched == s.text[m.start:m.end]
            assert (m.rule.id, m.start, m.end) in now      # never a match that is not there
        reported += [(m.rule.id, m.matched) for m in found]
    final = traps.match(s.text)
    reported += [(m.rule.id, m.matched) for m in s.end_utterance()]
    for m in final:                                        # nothing in the final text missed
        assert (m.rule.id, m.matched) in reported


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(ops)
def test_a_tiny_buffer_still_reports_only_real_matches(traps: Matcher, keys: list[str]) -> None:
    s = traps.stream(capacity=12)
    for k in keys:
        found = s.key(k[1:-1]) if k.startswith("<") else s.feed(k)
        assert len(s.text) <= 12
        now = {(m.rule.id, m.start, m.end) for m in traps.match(s.text)}
        for m in found:
            assert m.matched == s.text[m.start:m.end]
            assert (m.rule.id, m.start, m.end) in now


# --------------------------------------------------------------------------- topic words (issue 13)

@pytest.fixture(scope="module")
def topics() -> Matcher:
    from core.rules import Mode, Rule
    return Matcher(RuleSet((
        Rule("self_harm.self_harm", "self harm", "self_harm", 2, topic=True),
        Rule("self_harm.cut_myself", "cut myself", "self_harm", 4),
        Rule("eating_disorder.anorexi", "anorexi", "eating_disorder", 2, Mode.EMBEDDED,
             topic=True),
        Rule("filter_bypass.dark_web", "dark web", "filter_bypass", 2, topic=True),
    )))


@pytest.mark.parametrize(("text", "expected"), [
    ("i self harm every night", ["self_harm.self_harm"]),             # no cue: it fires
    ("anorexia", ["eating_disorder.anorexi"]),
    ("how do i help my friend who does self harm", []),                # someone else
    ("we learned about anorexia in pshe", []),                         # taught
    ("self harm lesson notes", []),                                    # the cue may follow
    ("YoungMinds - Self-harm - Google Chrome", []),                    # a help page's title
    ("my friend is ok i think. anorexia is ruining my life", ["eating_disorder.anorexi"]),
    ("self harm. my friend is fine", ["self_harm.self_harm"]),         # not across a sentence
    ("friend one two three four five six seven eight nine self harm",  # nor more than NEAR away
     ["self_harm.self_harm"]),
    ("she keeps sending her dark web links", ["filter_bypass.dark_web"]),  # pronouns are no cue
    ("my friend self harms and so do i, i cut myself", ["self_harm.cut_myself"]),  # first person
])
def test_a_topic_word_is_silent_beside_a_cue_in_its_sentence(topics: Matcher, text: str,
                                                              expected: list[str]) -> None:
    assert ids(topics.match(text)) == expected
    s = topics.stream()
    assert sorted(ids(type_text(s, text) + s.end_utterance())) == sorted(expected)


TOPIC_WORDS = ["self", "harm", "anorexia", "dark", "web", "friend", "lesson", "i", "cut",
               "myself", "a", "the", ".", "-", " ", "\n", "pshe", "harmm", "s3lf"]
topic_text = st.lists(st.sampled_from(TOPIC_WORDS), max_size=60).map(" ".join)


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(topic_text)
def test_stream_and_one_shot_agree_on_topic_words(topics: Matcher, text: str) -> None:
    s = topics.stream(capacity=1024)
    streamed = type_text(s, text) + s.end_utterance()
    key = sorted((m.rule.id, m.start, m.end, m.matched) for m in streamed)
    assert key == sorted((m.rule.id, m.start, m.end, m.matched) for m in topics.match(text))
