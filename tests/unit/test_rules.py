"""core.rules: the wordlist format, its validation errors, and layering of directories."""

from __future__ import annotations

from pathlib import Path

import pytest

from core import rules
from core.errors import RuleFileError
from core.rules import CATEGORIES, Mode, Rule, load_dirs, load_file, loads

GOOD = """\
category = "suicide"
language = "en"
disable = ["drugs.weed"]

[[rule]]
id = "suicide.kill_myself"
phrase = "kill myself"
severity = 5
unless = ["kill myself laughing"]

[[rule]]
id = "suicide.stem"
phrase = "suicid"
severity = 4
mode = "embedded"
languages = ["en", "cy"]

[[rule]]
id = "suicide.other_category"
phrase = "hang myself"
category = "self_harm"
severity = 5

[[exclude]]
phrase = "suicide prevention"
"""


def test_categories_are_exactly_the_issue_list() -> None:
    assert CATEGORIES == ("suicide", "self_harm", "eating_disorder", "bullying", "grooming",
                          "extremism", "drugs", "violence", "pornography", "gambling",
                          "discrimination", "filter_bypass")


def test_loads_reads_every_field_with_file_defaults() -> None:
    rs = loads(GOOD, "good.toml")
    first, stem, other = rs.rules
    assert first == Rule("suicide.kill_myself", "kill myself", "suicide", 5, Mode.WORD,
                         ("kill myself laughing",), ("en",))
    assert first.source == "good.toml"
    assert stem.mode is Mode.EMBEDDED and stem.languages == ("en", "cy")
    assert other.category == "self_harm"
    assert [e.phrase for e in rs.exclusions] == ["suicide prevention"]
    assert rs.disabled == frozenset({"drugs.weed"})
    assert rs.get("suicide.stem") is stem and rs.get("nope") is None


def _error(text: str) -> RuleFileError:
    with pytest.raises(RuleFileError) as info:
        loads(text, "school/bad.toml")
    return info.value


RULE = 'category = "violence"\n\n[[rule]]\nid = "violence.a"\nphrase = "stab"\nseverity = 3\n'


@pytest.mark.parametrize(
    ("text", "line", "problem"),
    [
        (RULE + '\n[[rule]]\nid = "violence.a"\nphrase = "x y"\nseverity = 2\n', 9,
         "duplicate rule id 'violence.a' (first defined at line 4)"),
        (RULE.replace('severity = 3', 'severity = 6'), 6, "severity 6 is out of range 1-5"),
        (RULE.replace('severity = 3', 'severity = 0'), 6, "severity 0 is out of range 1-5"),
        (RULE.replace('severity = 3', 'severity = "3"'), 6, "severity must be an integer"),
        (RULE.replace('severity = 3', 'severity = true'), 6, "severity must be an integer"),
        (RULE.replace('phrase = "stab"', 'phrase = "  "'), 5, "phrase is empty"),
        (RULE.replace('phrase = "stab"', 'phrase = "?!"'), 5, "has no letters or digits"),
        (RULE.replace('phrase = "stab"', 'phrase = 7'), 5, "phrase must be a string"),
        (RULE.replace('"violence"', '"violent"'), 1, "unknown category 'violent'"),
        (RULE + 'colour = "red"\n', 7, "unknown key 'colour' in [[rule]]"),
        ('flavour = 1\n' + RULE, 1, "unknown key 'flavour'"),
        (RULE.replace('id = "violence.a"', 'id = "Violence A"'), 4, "must match [a-z0-9_.-]+"),
        (RULE + 'mode = "fuzzy"\n', 7, "mode must be \"word\" or \"embedded\""),
        (RULE + 'unless = "x"\n', 7, "unless must be a list of strings"),
        (RULE + 'unless = [""]\n', 7, "unless phrase is empty"),
        (RULE + 'languages = ["english!"]\n', 7, "language must be a code"),
        (RULE.replace('category = "violence"\n', ''), 2, "has no category"),
        (RULE.replace('severity = 3\n', ''), 3, "[[rule]] is missing 'severity'"),
        (RULE + '\n[[exclude]]\nphrase = "a"\nnote = 1\n', 10, "unknown key 'note' in [[exclude]]"),
        (RULE + '\n[[exclude]]\n', 8, "[[exclude]] is missing 'phrase'"),
        (RULE.replace('[[rule]]\n', '[[rule]]\nseverity = 1\n'), 7, "invalid TOML"),
        ('category = "violence"\nrule = 3\n', 2, "'rule' must be written as [[rule]] tables"),
        ('category = "violence"\n\n[rule]\nid = "v.a"\n', 3,
         "'rule' must be written as [[rule]] tables"),
    ],
)
def test_bad_file_gives_one_error_naming_file_line_and_problem(text: str, line: int,
                                                                 problem: str) -> None:
    err = _error(text)
    assert err.file == "school/bad.toml"
    assert err.line == line
    assert problem in err.problem
    message = str(err)
    assert message.startswith(f"school/bad.toml:{line}: ")
    assert "\n" not in message
    assert err.exit_code == 2


def test_top_level_key_after_a_table_gets_a_hint() -> None:
    err = _error(RULE + 'disable = ["drugs.weed"]\n')
    assert err.line == 7
    assert "must come before the first [[...]] table" in err.problem


def test_toml_syntax_error_carries_its_line() -> None:
    err = _error('category = "violence"\n[[rule]]\nid = "a\nphrase = "x"\n')
    assert err.line == 3
    assert err.problem.startswith("invalid TOML")


def test_load_file_reports_unreadable_and_non_utf8_files(tmp_path: Path) -> None:
    latin1 = tmp_path / "latin1.toml"
    latin1.write_bytes('category = "drugs"\n# caf\xe9\n'.encode("latin-1"))
    with pytest.raises(RuleFileError, match=r"latin1\.toml: not UTF-8"):
        load_file(latin1)
    with pytest.raises(RuleFileError, match=r"missing\.toml: cannot read"):
        load_file(tmp_path / "missing.toml")


def _write(directory: Path, name: str, text: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(text, encoding="utf-8")
    return path


def test_load_dirs_later_directories_override_and_disable(tmp_path: Path) -> None:
    default, school = tmp_path / "default", tmp_path / "school"
    _write(default, "drugs.toml", 'category = "drugs"\n'
           '[[rule]]\nid = "drugs.weed"\nphrase = "weed"\nseverity = 2\n'
           '[[rule]]\nid = "drugs.ket"\nphrase = "ket"\nseverity = 3\n')
    _write(default, "violence.toml", 'category = "violence"\n'
           '[[rule]]\nid = "violence.stab"\nphrase = "stab"\nseverity = 4\n')
    _write(school, "local.toml", 'category = "drugs"\ndisable = ["drugs.weed"]\n'
           '[[rule]]\nid = "drugs.ket"\nphrase = "ketamine"\nseverity = 4\n'
           '[[exclude]]\nphrase = "weed the garden"\n')
    rs = load_dirs(default, school)
    by_id = {r.id: r for r in rs.rules}
    assert set(by_id) == {"drugs.ket", "violence.stab"}
    assert by_id["drugs.ket"].phrase == "ketamine" and by_id["drugs.ket"].severity == 4
    assert [e.phrase for e in rs.exclusions] == ["weed the garden"]
    assert len(load_dirs(default)) == 3


def test_duplicate_id_in_two_files_of_one_directory_names_the_second(tmp_path: Path) -> None:
    _write(tmp_path, "a.toml", 'category = "drugs"\n[[rule]]\nid = "x.y"\nphrase = "a"\n'
                               'severity = 1\n')
    second = _write(tmp_path, "b.toml", 'category = "drugs"\n\n[[rule]]\nid = "x.y"\n'
                                        'phrase = "b"\nseverity = 1\n')
    with pytest.raises(RuleFileError) as info:
        load_dirs(tmp_path)
    assert info.value.file == str(second) and info.value.line == 4
    assert "duplicate rule id 'x.y'" in info.value.problem


def test_load_dirs_rejects_a_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(RuleFileError, match="not a directory"):
        load_dirs(tmp_path / "nope")


def test_digest_depends_on_content_not_order_or_files() -> None:
    a = loads(GOOD, "a.toml")
    reordered = rules.RuleSet(tuple(reversed(a.rules)), a.exclusions)
    assert a.digest() == reordered.digest()
    changed = loads(GOOD.replace("severity = 4", "severity = 3"), "a.toml")
    assert changed.digest() != a.digest()
    assert len(a.digest()) == 64


def test_default_dir_is_the_installed_wordlists_package() -> None:
    import wordlists

    assert rules.default_dir() == Path(wordlists.__file__).resolve().parent
    load_dirs(rules.default_dir())  # the shipped lists must always load


def test_layers_from_memory_merge_like_directories() -> None:
    # What an agent does with the wordlist files that arrive inside a signed policy.
    drugs = 'category = "drugs"\n[[rule]]\nid = "drugs.weed"\nphrase = "weed"\nseverity = 2\n'
    violence = ('category = "violence"\n[[rule]]\nid = "violence.stab"\nphrase = "stab"\n'
                "severity = 4\n")
    local = 'disable = ["drugs.weed"]\n[[exclude]]\nphrase = "stab vest"\n'
    default = rules.loads_layer([("drugs.toml", drugs), ("violence.toml", violence)])
    school = rules.loads_layer([("school.toml", local)])
    merged = rules.merge(default, school)
    assert [r.id for r in merged.rules] == ["violence.stab"]
    assert [e.phrase for e in merged.exclusions] == ["stab vest"]
    with pytest.raises(RuleFileError) as info:
        rules.loads_layer([("a.toml", RULE), ("b.toml", "\n" + RULE)])
    assert (info.value.file, info.value.line) == ("b.toml", 5)


# --------------------------------------------------------------------------- policy layering

def test_policy_files_stack_school_over_defaults_whatever_the_file_names() -> None:
    from core.rules import load_policy_files

    files = {
        # "a.toml" sorts before "violence.toml": layering must not depend on names.
        "default/violence.toml": 'category = "violence"\n[[rule]]\nid = "violence.stab"\n'
                                 'phrase = "stab"\nseverity = 4\n',
        "default/drugs.toml": 'category = "drugs"\n[[rule]]\nid = "drugs.weed"\n'
                              'phrase = "weed"\nseverity = 2\n',
        "school/a.toml": 'category = "violence"\ndisable = ["drugs.weed"]\n[[rule]]\n'
                         'id = "violence.stab"\nphrase = "stab"\nseverity = 5\n',
    }
    ruleset = load_policy_files(files)
    by_id = {rule.id: rule for rule in ruleset.rules}
    assert by_id["violence.stab"].severity == 5
    assert "drugs.weed" not in by_id


def test_policy_file_without_a_layer_is_one_clear_error() -> None:
    from core.rules import load_policy_files

    with pytest.raises(RuleFileError, match="must start with default/ or school/"):
        load_policy_files({"suicide.toml": 'category = "suicide"\n'})
