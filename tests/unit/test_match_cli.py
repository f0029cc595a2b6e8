"""``vigil match``: the JSON-lines contract of issue 2, run as a real process.

These pin the lists' part of the contract, so most run with ``--no-model`` (issue 13's model
matches are tested in test_detect.py); list matches carry ``"source": "list"``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BASIC = ROOT / "tests" / "data" / "wordlists_basic"


def vigil_match(*args: str, stdin: bytes) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-m", "vigil", "match", *args], input=stdin,
                          capture_output=True, cwd=ROOT, timeout=120, check=False)


LINES = [
    "I will kill you",
    "",
    "assessment therapist Sussex cocktail skillset analysis",
    "Ｙｏｕ ａｒｅ ａ ｌｏｓｅｒ, k i l l yourself 😀",
    "we had sex education today",
    "I kill myself laughing",
    "k.i.l.l myself",
]


@pytest.mark.parametrize("kind", ["title", "typed"])
def test_one_json_object_per_line_with_offsets_into_the_line(kind: str) -> None:
    proc = vigil_match("--kind", kind, "--wordlists", str(BASIC), "--no-model",
                       stdin=("\n".join(LINES) + "\n").encode("utf-8"))
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == b""
    records = [json.loads(line) for line in proc.stdout.decode("utf-8").splitlines()]
    assert [r["text"] for r in records] == LINES
    for record in records:
        for m in record["matches"]:
            assert set(m) == {"rule", "category", "severity", "start", "end", "matched",
                              "source"}
            assert m["source"] == "list"
            assert m["matched"] == record["text"][m["start"]:m["end"]]
    found = [[(m["rule"], m["matched"]) for m in r["matches"]] for r in records]
    assert found == [
        [("violence.kill", "kill")],
        [],
        [],
        [("bullying.loser", "ｌｏｓｅｒ"), ("violence.kill", "k i l l"),
         ("bullying.kill_yourself", "k i l l yourself")],
        [],
        [("violence.kill", "kill")],
        [("violence.kill", "k.i.l.l"), ("suicide.kill_myself", "k.i.l.l myself")],
    ]
    assert records[0]["matches"][0] == {"rule": "violence.kill", "category": "violence",
                                        "severity": 3, "start": 7, "end": 11, "matched": "kill",
                                        "source": "list"}


def test_typed_and_title_agree_and_crlf_is_not_part_of_the_text() -> None:
    data = b"loser\r\nsuicidal feelings\r\nweeeeed\r\n"
    title = vigil_match("--wordlists", str(BASIC), stdin=data)
    typed = vigil_match("--kind", "typed", "--wordlists", str(BASIC), stdin=data)
    assert title.returncode == typed.returncode == 0
    assert title.stdout == typed.stdout
    assert [json.loads(x)["text"] for x in title.stdout.splitlines()] == [
        "loser", "suicidal feelings", "weeeeed"]


def test_bad_wordlist_exits_2_with_one_line_naming_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "violence.toml"
    bad.write_text('category = "violence"\n[[rule]]\nid = "v.x"\nphrase = "x"\nseverity = 7\n',
                   encoding="utf-8")
    proc = vigil_match("--wordlists", str(tmp_path), stdin=b"hello\n")
    assert proc.returncode == 2
    assert proc.stdout == b""
    err = proc.stderr.decode("utf-8")
    assert err.count("\n") == 1
    assert err == f"vigil: {bad}:5: severity 7 is out of range 1-5\n"


def test_layered_wordlists_let_a_school_disable_a_rule(tmp_path: Path) -> None:
    (tmp_path / "school.toml").write_text('disable = ["bullying.loser"]\n', encoding="utf-8")
    proc = vigil_match("--wordlists", str(BASIC), "--wordlists", str(tmp_path), "--no-model",
                       stdin=b"loser\n")
    assert proc.returncode == 0
    assert json.loads(proc.stdout) == {"text": "loser", "matches": []}


def test_default_lists_load_and_spare_the_scunthorpe_words() -> None:
    proc = vigil_match(stdin=b"assessment therapist Sussex cocktail skillset analysis\n")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["matches"] == []


def test_invalid_utf8_is_replaced_not_fatal() -> None:
    proc = vigil_match("--wordlists", str(BASIC), "--no-model", stdin=b"caf\xe9 loser\n")
    assert proc.returncode == 0
    record = json.loads(proc.stdout)
    assert record["text"] == "caf\ufffd loser"
    assert [m["matched"] for m in record["matches"]] == ["loser"]


def test_typed_and_title_agree_on_the_whole_corpus() -> None:
    """Every line of the precision corpus, through the stream and one-shot: identical output."""
    corpus = ROOT / "tests" / "data" / "corpus"
    lines = [line for path in sorted(corpus.rglob("*.txt"))
             for line in path.read_text(encoding="utf-8").splitlines()]
    assert len(lines) > 1000, "the precision corpus in tests/data/corpus is missing"
    data = ("\n".join(lines) + "\n").encode("utf-8")
    title = vigil_match("--no-model", stdin=data)
    typed = vigil_match("--kind", "typed", "--no-model", stdin=data)
    assert title.returncode == typed.returncode == 0
    assert title.stdout == typed.stdout
    records = [json.loads(x) for x in title.stdout.splitlines()]
    assert len(records) == len(lines)
    assert sum(len(r["matches"]) for r in records) > len(lines) // 4   # the lists do fire
