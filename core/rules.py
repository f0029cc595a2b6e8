"""The wordlist format: load and validate rule files (TOML), merge default and school lists.

One file per category (see docs/internals.md). Every problem in a file is reported as one
:class:`~core.errors.RuleFileError` naming the file, the line and the problem, so that a school
editing its own list sees exactly what to fix; nothing half-loaded is ever returned.
"""

from __future__ import annotations

import hashlib
import json
import re
import tomllib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

from core.errors import RuleFileError
from core.normalize import fold_phrase

__all__ = [
    "ALL_PACKS",
    "CATEGORIES",
    "PACK_PREFIX",
    "POLICY_LAYERS",
    "Exclusion",
    "Mode",
    "Rule",
    "RuleSet",
    "default_dir",
    "default_files",
    "language_packs",
    "load_defaults",
    "load_dirs",
    "load_file",
    "load_policy_files",
    "loads",
    "loads_layer",
    "merge",
    "pack_dir",
    "select_packs",
]

# UKSIC's monitoring categories plus proxy/filter bypass, and eating disorders (issue 13: the
# Online Safety Act names content promoting them among the harms to children); illegal content
# sits under grooming, pornography and extremism at severity 5.
CATEGORIES: tuple[str, ...] = (
    "suicide",
    "self_harm",
    "eating_disorder",
    "bullying",
    "grooming",
    "extremism",
    "drugs",
    "violence",
    "pornography",
    "gambling",
    "discrimination",
    "filter_bypass",
)

_ID = re.compile(r"[a-z0-9_.-]+\Z")
_LANGUAGE = re.compile(r"[A-Za-z]{2,3}(?:-[A-Za-z0-9]{2,8})*\Z")
_TOP_KEYS = frozenset({"category", "language", "rule", "exclude", "disable"})
_RULE_KEYS = frozenset(
    {"id", "phrase", "category", "severity", "mode", "unless", "languages", "topic"}
)
_EXCLUDE_KEYS = frozenset({"phrase"})


class Mode(str, Enum):
    """How a phrase must sit in the text: as whole words, or as a stem inside a word."""

    WORD = "word"
    EMBEDDED = "embedded"


@dataclass(frozen=True, slots=True)
class Rule:
    id: str
    phrase: str
    category: str
    severity: int
    mode: Mode = Mode.WORD
    unless: tuple[str, ...] = ()
    languages: tuple[str, ...] = ()
    source: str = field(default="", compare=False)
    # a topic word, not a disclosure: silent beside a cue that it is said of someone else or
    # taught (core.topic_context, issue 13)
    topic: bool = False

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "phrase": self.phrase,
            "category": self.category,
            "severity": self.severity,
            "mode": self.mode.value,
            "unless": list(self.unless),
            "languages": list(self.languages),
        }
        if self.topic:  # only when set, so the digest of lists without topic rules is unchanged
            out["topic"] = True
        return out


@dataclass(frozen=True, slots=True)
class Exclusion:
    """A phrase inside which no rule fires (e.g. "sex education")."""

    phrase: str
    source: str = field(default="", compare=False)


@dataclass(frozen=True, slots=True)
class RuleSet:
    rules: tuple[Rule, ...] = ()
    exclusions: tuple[Exclusion, ...] = ()
    disabled: frozenset[str] = frozenset()

    def get(self, rule_id: str) -> Rule | None:
        for rule in self.rules:
            if rule.id == rule_id:
                return rule
        return None

    def digest(self) -> str:
        """A SHA-256 over the canonical content: equal for equal lists, whatever their files."""
        canonical = {
            "rules": sorted((r.as_dict() for r in self.rules), key=lambda d: d["id"]),
            "exclusions": sorted({e.phrase for e in self.exclusions}),
        }
        blob = json.dumps(canonical, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()

    def __len__(self) -> int:
        return len(self.rules)


def default_dir() -> Path:
    """The directory of the default lists shipped in the ``wordlists`` package."""
    import wordlists

    return wordlists.directory()


# --------------------------------------------------------------------------- language packs
#
# Short lists per language (wordlists/lang/<code>.toml, see wordlists/README.md) for the
# highest-severity categories. They are part of the default set unless a school switches them
# off ([policy] language_packs in the collector's settings), because pupils write in these
# languages; ``vigil match`` loads the same default set as the policy builder.

ALL_PACKS = "all"
PACK_PREFIX = "lang-"  # a pack's file name among the defaults: "lang-<code>.toml"


def pack_dir() -> Path:
    """The directory of the language packs: ``lang/`` inside the default lists' directory."""
    return default_dir() / "lang"


def language_packs() -> tuple[str, ...]:
    """The codes of the shipped language packs (the files' stems, e.g. "cy", "ur-Latn"), sorted."""
    directory = pack_dir()
    if not directory.is_dir():
        return ()
    return tuple(sorted(p.stem for p in directory.glob("*.toml") if p.is_file()))


def select_packs(selection: Iterable[str] | None = None) -> tuple[str, ...]:
    """The pack codes a selection names: None or ``["all"]`` is every shipped pack, ``[]`` none.

    Codes are matched without regard to case ("ur-latn" is "ur-Latn"). An unknown code raises
    ValueError naming the known ones, so a typo in a school's settings cannot quietly switch a
    language off; anything but a list of strings raises TypeError.
    """
    known = language_packs()
    if selection is None:
        return known
    if isinstance(selection, str):
        raise TypeError("language packs must be a list of codes such as [\"cy\", \"pl\"], "
                        "or [\"all\"]")
    chosen = list(selection)
    if not all(isinstance(code, str) for code in chosen):
        raise TypeError("language packs must be a list of codes (text)")
    if any(code.strip().lower() == ALL_PACKS for code in chosen):
        return known
    by_lower = {code.lower(): code for code in known}
    picked: set[str] = set()
    for code in chosen:
        found = by_lower.get(code.strip().lower())
        if found is None:
            raise ValueError(f"unknown language pack {code!r}; the packs are "
                             f"{', '.join(known) or 'none'} (or \"all\")")
        picked.add(found)
    return tuple(sorted(picked))


def default_files(packs: Iterable[str] | None = None) -> dict[str, str]:
    """The default rule files by name: every category list, then the chosen language packs as
    ``lang-<code>.toml`` (``packs`` as for :func:`select_packs`; None: all of them)."""
    files = {p.name: _read(p) for p in sorted(default_dir().glob("*.toml")) if p.is_file()}
    for code in select_packs(packs):
        files[f"{PACK_PREFIX}{code}.toml"] = _read(pack_dir() / f"{code}.toml")
    return files


def load_defaults(packs: Iterable[str] | None = None) -> RuleSet:
    """The default rules as one layer: the category lists plus the chosen language packs (None:
    all). What the policy builder puts in a policy by default, and what ``vigil match`` runs."""
    directory = default_dir()
    named = []
    for name, text in default_files(packs).items():
        if name.startswith(PACK_PREFIX):
            path = pack_dir() / f"{name[len(PACK_PREFIX):]}"
        else:
            path = directory / name
        named.append((str(path), text))
    return loads_layer(named)


# --------------------------------------------------------------------------- locating lines

Line = int | None | Callable[[], int | None]


class _Lines:
    """Finds the line of a table or key in the raw text, because tomllib reports none."""

    _HEADER = re.compile(r"^\s*\[\[?\s*([A-Za-z0-9_.\"' -]+?)\s*\]\]?")

    def __init__(self, text: str) -> None:
        self.lines = text.splitlines()
        # (line number, array name) of every [[array]] / [table] header, in order.
        self.headers: list[tuple[int, str]] = []
        for no, line in enumerate(self.lines, start=1):
            m = self._HEADER.match(line)
            if m:
                self.headers.append((no, m.group(1).strip("\"'")))

    def table(self, array: str, index: int) -> int | None:
        """Line of the ``index``-th ``[[array]]`` header."""
        seen = [no for no, name in self.headers if name == array]
        return seen[index] if index < len(seen) else None

    def key(self, name: str, array: str | None = None, index: int = 0) -> int | None:
        """Line of ``name = ...`` at top level (array None) or inside the index-th [[array]]."""
        if array is None:
            lo, hi = 1, self.headers[0][0] if self.headers else len(self.lines) + 1
        else:
            start = self.table(array, index)
            if start is None:
                return None
            later = [no for no, _ in self.headers if no > start]
            lo, hi = start + 1, later[0] if later else len(self.lines) + 1
        pattern = re.compile(rf"^\s*[\"']?{re.escape(name)}[\"']?\s*=")
        for no in range(lo, hi):
            if pattern.match(self.lines[no - 1]):
                return no
        return array and self.table(array, index) or None


# --------------------------------------------------------------------------- parsing


class _FileParser:
    def __init__(self, text: str, source: str) -> None:
        self.text = text
        self.source = source
        self.lines = _Lines(text)

    def fail(self, line: Line, problem: str) -> RuleFileError:
        # Lines are found only when something is wrong: looking them up for every rule would
        # make loading a 50k-rule list quadratic.
        return RuleFileError(self.source, line() if callable(line) else line, problem)

    def parse(self) -> tuple[list[Rule], list[Exclusion], list[str]]:
        try:
            data = tomllib.loads(self.text)
        except tomllib.TOMLDecodeError as exc:
            m = re.search(r"\(at line (\d+), column \d+\)", str(exc))
            line = int(m.group(1)) if m else None
            problem = re.sub(r"\s*\(at line \d+, column \d+\)", "", str(exc)) or "invalid TOML"
            raise self.fail(line, f"invalid TOML: {problem}") from None
        for key in data:
            if key not in _TOP_KEYS:
                raise self.fail(lambda k=key: self.lines.key(k) or self.lines.table(k, 0),
                                f"unknown key {key!r}")
        category = data.get("category")
        if category is not None:
            self._check_category(category, lambda: self.lines.key("category"))
        language = data.get("language")
        if language is not None:
            self._check_language(language, lambda: self.lines.key("language"))
        rules = self._rules(data.get("rule", []), category, language)
        exclusions = self._exclusions(data.get("exclude", []))
        disabled = self._disable(data.get("disable", []))
        return rules, exclusions, disabled

    # ----------------------------------------------------------------- values

    def _check_category(self, value: object, line: Line) -> str:
        if not isinstance(value, str) or value not in CATEGORIES:
            raise self.fail(line, f"unknown category {value!r}; expected one of "
                                  f"{', '.join(CATEGORIES)}")
        return value

    def _check_language(self, value: object, line: Line) -> str:
        if not isinstance(value, str) or not _LANGUAGE.match(value):
            raise self.fail(line, f"language must be a code such as \"en\", not {value!r}")
        return value

    def _check_phrase(self, value: object, line: Line, what: str) -> str:
        if not isinstance(value, str):
            raise self.fail(line, f"{what} must be a string, not {type(value).__name__}")
        if not value.strip():
            raise self.fail(line, f"{what} is empty")
        if not fold_phrase(value):
            raise self.fail(line, f"{what} {value!r} has no letters or digits to match")
        return value.strip()

    def _strings(self, value: object, line: Line, what: str) -> list[str]:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self.fail(line, f"{what} must be a list of strings")
        return value

    # ----------------------------------------------------------------- tables

    def _array(self, value: object, name: str) -> list[Mapping[str, Any]]:
        if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
            raise self.fail(lambda: self.lines.key(name) or self.lines.table(name, 0),
                            f"{name!r} must be written as [[{name}]] tables")
        return value

    def _rules(self, value: object, category: str | None, language: str | None) -> list[Rule]:
        out: list[Rule] = []
        seen: dict[str, int] = {}
        for i, table in enumerate(self._array(value, "rule")):
            def at(key: str | None = None, _i: int = i) -> Line:
                if key is None:
                    return lambda: self.lines.table("rule", _i)
                return lambda: self.lines.key(key, "rule", _i)

            for key in table:
                if key not in _RULE_KEYS:
                    raise self.fail(at(key), f"unknown key {key!r} in [[rule]]{_hint(key)}")
            for key in ("id", "phrase", "severity"):
                if key not in table:
                    raise self.fail(at(), f"[[rule]] is missing {key!r}")
            rule_id = table["id"]
            if not isinstance(rule_id, str) or not _ID.match(rule_id):
                raise self.fail(at("id"), f"rule id {rule_id!r} must match [a-z0-9_.-]+")
            if rule_id in seen:
                first = self.lines.key("id", "rule", seen[rule_id])
                raise self.fail(at("id"), f"duplicate rule id {rule_id!r} "
                                          f"(first defined at line {first})")
            seen[rule_id] = i
            phrase = self._check_phrase(table["phrase"], at("phrase"), "phrase")
            rule_category = table.get("category", category)
            if rule_category is None:
                raise self.fail(at(), f"rule {rule_id!r} has no category (set category at the "
                                      "top of the file or in the rule)")
            self._check_category(rule_category, at("category") if "category" in table
                                 else lambda: self.lines.key("category"))
            severity = table["severity"]
            if isinstance(severity, bool) or not isinstance(severity, int):
                raise self.fail(at("severity"), f"severity must be an integer 1-5, "
                                                f"not {severity!r}")
            if not 1 <= severity <= 5:
                raise self.fail(at("severity"), f"severity {severity} is out of range 1-5")
            mode_value = table.get("mode", Mode.WORD.value)
            try:
                mode = Mode(mode_value)
            except ValueError:
                raise self.fail(at("mode"), f"mode must be \"word\" or \"embedded\", "
                                            f"not {mode_value!r}") from None
            unless = tuple(
                self._check_phrase(u, at("unless"), "unless phrase")
                for u in self._strings(table.get("unless", []), at("unless"), "unless")
            )
            if "languages" in table:
                languages = tuple(
                    self._check_language(v, at("languages"))
                    for v in self._strings(table["languages"], at("languages"), "languages")
                )
            else:
                languages = (language,) if language else ()
            topic = table.get("topic", False)
            if not isinstance(topic, bool):
                raise self.fail(at("topic"), f"topic must be true or false, not {topic!r}")
            out.append(Rule(rule_id, phrase, rule_category, severity, mode, unless, languages,
                            self.source, topic=topic))
        return out

    def _exclusions(self, value: object) -> list[Exclusion]:
        out: list[Exclusion] = []
        for i, table in enumerate(self._array(value, "exclude")):
            for key in table:
                if key not in _EXCLUDE_KEYS:
                    raise self.fail(lambda k=key, j=i: self.lines.key(k, "exclude", j),
                                    f"unknown key {key!r} in [[exclude]]{_hint(key)}")
            if "phrase" not in table:
                raise self.fail(lambda j=i: self.lines.table("exclude", j),
                                "[[exclude]] is missing 'phrase'")
            phrase = self._check_phrase(table["phrase"],
                                        lambda j=i: self.lines.key("phrase", "exclude", j),
                                        "exclude phrase")
            out.append(Exclusion(phrase, self.source))
        return out

    def _disable(self, value: object) -> list[str]:
        def line() -> int | None:
            return self.lines.key("disable")

        ids = self._strings(value, line, "disable")
        for rule_id in ids:
            if not _ID.match(rule_id):
                raise self.fail(line, f"disable: {rule_id!r} is not a rule id")
        return ids


def _hint(key: str) -> str:
    # TOML puts every key after a [[table]] header into that table: a common slip.
    if key in _TOP_KEYS:
        return f"; top-level keys such as {key!r} must come before the first [[...]] table"
    return ""


# --------------------------------------------------------------------------- public API


def loads(text: str, source: str = "<string>") -> RuleSet:
    """Parse one rule file's text; ``source`` names it in errors."""
    rules, exclusions, disabled = _FileParser(text, source).parse()
    return RuleSet(tuple(rules), tuple(exclusions), frozenset(disabled))


def _read(path: Path) -> str:
    try:
        return path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RuleFileError(str(path), None, f"not UTF-8 text ({exc.reason} at byte "
                                             f"{exc.start})") from None
    except OSError as exc:
        raise RuleFileError(str(path), None, f"cannot read: {exc.strerror}") from None


def load_file(path: str | Path) -> RuleSet:
    path = Path(path)
    return loads(_read(path), str(path))


def loads_layer(files: Iterable[tuple[str, str]]) -> RuleSet:
    """One layer of rule files given as (name, text), e.g. one directory: ids must be unique
    across the files; a clash names the second file and the line of its rule."""
    rules: dict[str, Rule] = {}
    exclusions: list[Exclusion] = []
    disabled: set[str] = set()
    for name, text in files:
        loaded = loads(text, name)
        for index, rule in enumerate(loaded.rules):
            if rule.id in rules:
                raise RuleFileError(name, _Lines(text).key("id", "rule", index),
                                    f"duplicate rule id {rule.id!r} (also in "
                                    f"{rules[rule.id].source})")
            rules[rule.id] = rule
        exclusions.extend(loaded.exclusions)
        disabled.update(loaded.disabled)
    return RuleSet(tuple(rules.values()), tuple(exclusions), frozenset(disabled))


def merge(*layers: RuleSet) -> RuleSet:
    """Stack layers (default lists first, then the school's): a later layer redefines a rule id
    (its version wins) or turns earlier rules off with ``disable``; exclusions accumulate."""
    merged: dict[str, Rule] = {}
    exclusions: list[Exclusion] = []
    disabled: set[str] = set()
    for layer in layers:
        for rule_id in layer.disabled:
            merged.pop(rule_id, None)
        merged.update((rule.id, rule) for rule in layer.rules)
        exclusions.extend(layer.exclusions)
        disabled.update(layer.disabled)
    return RuleSet(tuple(merged.values()), tuple(exclusions), frozenset(disabled))


POLICY_LAYERS = ("default", "school")


def load_policy_files(files: Mapping[str, str]) -> RuleSet:
    """The rules a signed policy carries. Its files are named ``"<layer>/<file>"`` and stacked
    in :data:`POLICY_LAYERS` order, defaults first and the school's own on top, exactly as
    :func:`load_dirs` stacks directories; the agent, the dashboard's rule tester and the
    collector all read a policy through this one function so they agree on what fires."""
    layers: dict[str, list[tuple[str, str]]] = {layer: [] for layer in POLICY_LAYERS}
    for name in sorted(files):
        layer, sep, _ = name.partition("/")
        if not sep or layer not in layers:
            raise RuleFileError(name, None, "a policy's wordlist names must start with "
                                + " or ".join(f"{lay}/" for lay in POLICY_LAYERS))
        layers[layer].append((name, files[name]))
    return merge(*(loads_layer(layers[layer]) for layer in POLICY_LAYERS))


def _read_dir(directory: Path) -> list[tuple[str, str]]:
    if not directory.is_dir():
        raise RuleFileError(str(directory), None, "not a directory of wordlist files")
    files = sorted(p for p in directory.glob("*.toml") if p.is_file())
    return [(str(p), _read(p)) for p in files]


def load_dirs(*dirs: str | Path) -> RuleSet:
    """Load every ``*.toml`` in each directory, in name order, one layer per directory (see
    :func:`loads_layer` and :func:`merge`): later directories override earlier ones."""
    return merge(*(loads_layer(_read_dir(Path(d))) for d in dirs))
