"""Hypothesis over the rule-file loader (core.rules), the format schools edit by hand.

tests/unit/test_rules.py checks chosen good and bad files; these properties cover what nobody
thought to write: any text either loads or fails with one RuleFileError naming the file (and a
line when there is one) on one line; a file built from any valid rules loads back to exactly
those rules; and damaging a valid file line by line never escapes as another exception.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.errors import RuleFileError
from core.rules import CATEGORIES, Mode, RuleSet, loads

PROPERTY = settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
SOURCE = "school-test.toml"


def _loads_or_clean_error(text: str) -> RuleSet | RuleFileError:
    try:
        return loads(text, SOURCE)
    except RuleFileError as exc:
        message = str(exc)
        assert message.startswith(SOURCE), message
        assert "\n" not in message, message
        assert exc.line is None or exc.line >= 1
        return exc
    except Exception as exc:  # noqa: BLE001 - the property: nothing but RuleFileError
        pytest.fail(f"{type(exc).__name__} escaped the loader: {exc}")


@PROPERTY
@given(st.text(max_size=400))
def test_any_text_loads_or_fails_with_one_clean_error(text: str) -> None:
    _loads_or_clean_error(text)


toml_scalars = st.one_of(st.integers(min_value=-10, max_value=10), st.booleans(),
                         st.text(max_size=20), st.floats(allow_nan=False, allow_infinity=False),
                         st.lists(st.text(max_size=8), max_size=3))


@PROPERTY
@given(st.dictionaries(st.sampled_from(["id", "phrase", "severity", "mode", "unless",
                                        "languages", "category", "bogus"]),
                       toml_scalars, max_size=6),
       st.sampled_from([*CATEGORIES, "nonsense", ""]))
def test_any_rule_table_loads_or_fails_cleanly(fields: dict[str, Any], category: str) -> None:
    lines = [f"category = {json.dumps(category)}", "", "[[rule]]"]
    lines += [f"{key} = {_toml(value)}" for key, value in fields.items()]
    _loads_or_clean_error("\n".join(lines) + "\n")


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    return "[" + ", ".join(_toml(v) for v in value) + "]"


words = st.text(alphabet="abcdefghijklmnopqrstuvwxyz", min_size=2, max_size=8)
phrases = st.lists(words, min_size=1, max_size=3).map(" ".join)
rule_specs = st.lists(
    st.tuples(phrases, st.integers(min_value=1, max_value=5), st.sampled_from(list(Mode))),
    min_size=1, max_size=8, unique_by=lambda r: r[0])


@PROPERTY
@given(st.sampled_from(CATEGORIES), rule_specs)
def test_a_file_of_valid_rules_loads_back_to_exactly_those_rules(
        category: str, specs: list[tuple[str, int, Mode]]) -> None:
    lines = [f'category = "{category}"', 'language = "en"']
    for i, (phrase, severity, mode) in enumerate(specs):
        lines += ["", "[[rule]]", f'id = "{category}.r{i}"', f"phrase = {json.dumps(phrase)}",
                  f"severity = {severity}", f'mode = "{mode.value}"']
    text = "\n".join(lines) + "\n"
    loaded = _loads_or_clean_error(text)
    if isinstance(loaded, RuleFileError):
        # Only a phrase the format refuses on purpose (e.g. a stem too short to embed) may fail.
        assert "phrase" in loaded.problem or "embedded" in loaded.problem, str(loaded)
        return
    got = {r.id: (r.phrase, r.severity, r.mode, r.category) for r in loaded.rules}
    assert got == {f"{category}.r{i}": (p, s, m, category) for i, (p, s, m) in enumerate(specs)}
    assert loaded.digest() == loads(text, "another-name.toml").digest()  # content, not file


VALID_FILE = """category = "bullying"
language = "en"

[[rule]]
id = "bullying.go_die_test"
phrase = "go die"
severity = 4
unless = ["go die hard"]

[[exclude]]
phrase = "die hard film"

disable = ["drugs.weed"]
"""


@PROPERTY
@given(st.lists(st.tuples(st.integers(min_value=0, max_value=30),
                          st.sampled_from(["delete", "duplicate", "garble", "swap"]),
                          st.text(max_size=12)), min_size=1, max_size=4))
def test_damaging_a_valid_file_line_by_line_never_escapes_the_error_type(
        edits: list[tuple[int, str, str]]) -> None:
    lines = VALID_FILE.splitlines()
    for at, how, junk in edits:
        i = at % len(lines)
        if how == "delete":
            del lines[i]
        elif how == "duplicate":
            lines.insert(i, lines[i])
        elif how == "garble":
            lines[i] = lines[i][: len(lines[i]) // 2] + junk
        else:
            j = (i + 1) % len(lines)
            lines[i], lines[j] = lines[j], lines[i]
        if not lines:
            lines = [""]
    _loads_or_clean_error("\n".join(lines) + "\n")
