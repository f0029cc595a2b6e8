"""The language packs (wordlists/lang/<code>.toml, issue 13): shape, and per language a phrase a
pupil would type (usually without diacritics) that must fire, and ordinary uses that must not.

Every case runs through core.matcher one-shot and typed a character at a time, on the default
set the policy builder and ``vigil match`` load (core.rules.load_defaults: lists plus all packs);
one line per language also goes through ``vigil match --no-model`` as a real process.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from core.matcher import Match, Matcher
from core.normalize import fold_phrase, normalize
from core.policy import _WORDLIST_NAME
from core.rules import (
    PACK_PREFIX,
    RuleSet,
    default_dir,
    default_files,
    language_packs,
    load_defaults,
    load_dirs,
    load_file,
    load_policy_files,
    pack_dir,
    select_packs,
)
from tests.data.corpus import CORPUS_DIR, HELDOUT_DIR, benign

ROOT = Path(__file__).resolve().parents[2]
# The languages issue 13 names; each has a pack.
LANGUAGES = ("cy", "pl", "ro", "ur", "ur-Latn", "pa", "bn", "ar", "so", "pt", "es", "fr", "lt",
             "tr")
PACK_CATEGORIES = {"suicide", "self_harm", "grooming", "extremism"}

# (language, text as a pupil might type it, rule that must fire). Written without diacritics
# where pupils usually drop them, to prove the folding.
HITS: list[tuple[str, str, str]] = [
    ("cy", "dwi'n mynd i ladd fy hun heno", "suicide.cy.ladd_fy_hun"),
    ("cy", "dwi isio marw", "suicide.cy.isio_marw"),
    ("cy", "paid deud wrth dy fam am hyn", "grooming.cy.paid_deud_wrth_dy_fam"),
    ("cy", "sut i wneud bom", "extremism.cy.wneud_bom"),
    ("pl", "chce sie zabic", "suicide.pl.chce_sie_zabic"),
    ("pl", "Chcę się zabić.", "suicide.pl.chce_sie_zabic"),
    ("pl", "tne sie od miesiaca", "self_harm.pl.tne_sie"),
    ("pl", "cielam sie wczoraj", "self_harm.pl.cielam_sie_plain"),
    ("pl", "nie mow rodzicom o nas", "grooming.pl.nie_mow_rodzicom"),
    ("ro", "vreau sa ma omor", "suicide.ro.vreau_sa_ma_omor"),
    ("ro", "nu mai vreau sa traiesc", "suicide.ro.nu_mai_vreau_sa_traiesc"),
    ("ro", "nu-i spune mamei", "grooming.ro.nu_i_spune_mamei"),
    ("ur", "میں خودکشی کر لوں گی", "suicide.ur.khudkushi_kar_lun"),
    ("ur", "میں مرنا چاہتا ہوں", "suicide.ur.marna_chahta_hun"),
    ("ur", "امی کو مت بتانا", "grooming.ur.ammi_ko_mat_batana"),
    ("ur-Latn", "main marna chahti hun", "suicide.ur_latn.marna_chahti"),
    ("ur-Latn", "main khudkushi kar lunga", "suicide.ur_latn.khudkushi_kar_lunga"),
    ("ur-Latn", "ammi ko mat batana ok", "grooming.ur_latn.ammi_ko_mat_batana"),
    ("pa", "ਮੈਂ ਮਰਨਾ ਚਾਹੁੰਦੀ ਹਾਂ", "suicide.pa.main_marna_chahunda"),
    ("pa", "ਮੰਮੀ ਨੂੰ ਨਾ ਦੱਸੀਂ", "grooming.pa.mummy_nu_na_dassin"),
    ("bn", "আমি মরতে চাই", "suicide.bn.ami_morte_chai"),
    ("bn", "মাকে বলো না", "grooming.bn.maake_bolo_na"),
    ("ar", "اريد ان انتحر", "suicide.ar.urid_an_antahir"),
    ("ar", "أريد أن أنتحر", "suicide.ar.urid_an_antahir"),
    ("ar", "لا تخبري اهلك", "grooming.ar.la_tukhbiri_ahlak"),
    ("so", "waxaan rabaa inaan is dilo", "suicide.so.inaan_is_dilo"),
    ("so", "hooyadaa ha u sheegin", "grooming.so.hooyadaa_ha_u_sheegin"),
    ("pt", "vou me matar", "suicide.pt.vou_me_matar"),
    ("pt", "nao quero viver mais", "suicide.pt.nao_quero_viver"),
    ("pt", "nao conta pra sua mae", "grooming.pt.nao_conta_pra_sua_mae"),
    ("es", "me voy a matar esta noche", "suicide.es.me_voy_a_matar"),
    ("es", "me quiero morir", "suicide.es.quiero_morir"),
    ("es", "no le digas a tu mama", "grooming.es.no_le_digas_a_tu_mama"),
    ("fr", "je vais me tuer", "suicide.fr.je_vais_me_tuer"),
    ("fr", "j'ai envie de mourir", "suicide.fr.envie_de_mourir"),
    ("fr", "dis rien a tes parents", "grooming.fr.dis_rien_a_tes_parents"),
    ("lt", "noriu nusizudyti", "suicide.lt.noriu_nusizudyti"),
    ("lt", "nesakyk tevams", "grooming.lt.nesakyk_tevams"),
    ("tr", "olmek istiyorum", "suicide.tr.olmek_istiyorum"),
    ("tr", "kendimi oldurecegim", "suicide.tr.kendimi_oldurecegim"),
    ("tr", "annene soyleme", "grooming.tr.annene_soyleme"),
]

# (language, ordinary text that must fire nothing at all): the local "my mum will kill me",
# "dying of hunger", negations, bath bombs, haircuts, own goals.
TRAPS: list[tuple[str, str]] = [
    ("cy", "bydd Mam yn fy lladd i"),
    ("cy", "dwi bron a marw isio bwyd"),
    ("cy", "dwi ddim isio marw yn y gêm"),
    ("cy", "nes i dorri fy hun ar ddamwain efo'r siswrn"),
    ("cy", "gwnaethon ni wneud bom bath yn y wers"),
    ("pl", "mama mnie zabije"),
    ("pl", "umieram z glodu"),
    ("pl", "strzelil samoboja w ostatniej minucie"),
    ("pl", "gol samobojczy"),
    ("pl", "nie chce umrzec w tej grze"),
    ("pl", "jak zrobic bombe kapielowa"),
    ("pl", "tne papier nozyczkami"),
    ("ro", "mama ma omoara"),
    ("ro", "mor de foame"),
    ("ro", "nu vreau sa mor in joc"),
    ("ro", "imi iau viata inapoi"),
    ("ro", "cum fac o bomba de baie"),
    ("ro", "cum esti azi"),
    ("ur", "امی مجھے مار ڈالیں گی"),
    ("ur", "بھوک سے مر رہا ہوں"),
    ("ur", "میں مرنا نہیں چاہتا"),
    ("ur-Latn", "ammi mujhe maar dalengi"),
    ("ur-Latn", "bhook se mar raha hun yaar"),
    ("ur-Latn", "main marna nahi chahta"),
    ("ur-Latn", "bath bomb kaise banaye"),
    ("pa", "ਮੰਮੀ ਮੈਨੂੰ ਮਾਰ ਦੇਵੇਗੀ"),
    ("pa", "ਭੁੱਖ ਨਾਲ ਮਰ ਰਿਹਾ ਹਾਂ"),
    ("bn", "আম্মু আমাকে মেরে ফেলবে"),
    ("bn", "ক্ষুধায় মরে যাচ্ছি"),
    ("ar", "امي راح تقتلني"),
    ("ar", "رح اقتل نفسي من الضحك"),
    ("ar", "لا اريد ان اموت"),
    ("ar", "اموت من الجوع"),
    ("so", "hooyaday way i dili doontaa"),
    ("so", "gaajo ayaan u dhimanayaa"),
    ("pt", "minha mae vai me matar"),
    ("pt", "vou me matar de rir"),
    ("pt", "estou morrendo de fome"),
    ("pt", "nao quero morrer no jogo"),
    ("pt", "vamos fazer uma bomba de banho"),
    ("es", "mi madre me va a matar"),
    ("es", "me muero de hambre"),
    ("es", "me voy a matar de risa"),
    ("es", "me quiero morir de verguenza"),
    ("es", "me corto el pelo el sabado"),
    ("es", "vamos a hacer una bomba de bano"),
    ("fr", "ma mere va me tuer"),
    ("fr", "je veux mourir de rire"),
    ("fr", "je meurs de faim"),
    ("fr", "on va fabriquer une bombe de bain"),
    ("fr", "je suis en retard pour le bus"),
    ("lt", "mama mane uzmus"),
    ("lt", "mirstu is bado"),
    ("lt", "nenoriu mirti"),
    ("tr", "annem beni oldurecek"),
    ("tr", "acliktan oluyorum"),
    ("tr", "utanctan olmek istiyorum"),
    ("tr", "gulmekten oldum"),
]


@pytest.fixture(scope="module")
def ruleset() -> RuleSet:
    return load_defaults()


@pytest.fixture(scope="module")
def matcher(ruleset: RuleSet) -> Matcher:
    return Matcher(ruleset)


def typed(matcher: Matcher, text: str) -> list[Match]:
    stream = matcher.stream()
    return [m for ch in text for m in stream.feed(ch)] + stream.end_utterance()


# --------------------------------------------------------------------------- shape


def test_every_language_of_the_issue_has_a_pack() -> None:
    assert set(language_packs()) == set(LANGUAGES)


@pytest.mark.parametrize("code", LANGUAGES)
def test_pack_is_marked_with_its_language_and_stays_short(code: str) -> None:
    path = pack_dir() / f"{code}.toml"
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    assert data["language"] == code and "category" not in data and "disable" not in data
    rules = load_file(path).rules
    assert 6 <= len(rules) <= 25, len(rules)
    assert {r.category for r in rules} <= PACK_CATEGORIES
    assert {r.category for r in rules} >= {"suicide", "self_harm", "grooming"}
    lang = code.lower().replace("-", "_")
    for rule in rules:
        assert rule.languages == (code,), rule.id
        assert re.fullmatch(rf"{rule.category}\.{lang}\.[a-z0-9_]+", rule.id), rule.id
        # only the high-severity categories, never noise; a topic word ("samobójstwo") is 2,
        # the review band, like the English ones (issue 13: first person beats topic)
        assert rule.severity >= 3 or (rule.topic and rule.severity == 2), rule.id


@pytest.mark.parametrize("code", LANGUAGES)
def test_every_rule_says_in_english_what_it_means(code: str) -> None:
    """A reviewer who does not read the language sees each phrase's meaning in its comment."""
    text = (pack_dir() / f"{code}.toml").read_text(encoding="utf-8")
    severities = re.findall(r"^severity = \d.*$", text, re.MULTILINE)
    assert severities and all(re.search(r"# \S", line) for line in severities)
    assert "native speakers" in text


def test_folded_phrases_are_unique_across_lists_and_packs(ruleset: RuleSet) -> None:
    ids = [r.id for r in ruleset.rules]
    assert len(ids) == len(set(ids))
    # Letter runs are part of the key, as in test_wordlists: "gypo" is not "gyppo".
    seen: dict[object, str] = {}
    for rule in ruleset.rules:
        key = (rule.mode, tuple((w.key, w.runs) for w in normalize(rule.phrase).folds))
        assert key not in seen, f"{rule.id} folds like {seen[key]}"
        seen[key] = rule.id


def test_polish_phrases_with_l_stroke_are_also_listed_without_it() -> None:
    """The matcher folds diacritics but "ł" is a letter of its own: a pupil typing without
    Polish letters writes "l", so every phrase with "ł" has a twin with "l"."""
    phrases = {fold_phrase(r.phrase) for r in load_file(pack_dir() / "pl.toml").rules}
    for phrase in phrases:
        if "ł" in phrase:
            assert phrase.replace("ł", "l") in phrases, phrase


def test_every_pack_unless_contains_its_phrase_and_cancels_it(matcher: Matcher) -> None:
    for code in LANGUAGES:
        for rule in load_file(pack_dir() / f"{code}.toml").rules:
            for unless in rule.unless:
                # a whole-word phrase must be a whole word of its context; an embedded stem
                # (mode "embedded", e.g. "automutil") may sit inside a word of it
                word = f" {fold_phrase(rule.phrase)} " in f" {fold_phrase(unless)} "
                stem = rule.mode == "embedded" and fold_phrase(rule.phrase) in fold_phrase(unless)
                assert word or stem, rule.id
                assert rule.id not in {m.rule.id for m in matcher.match(f"{unless}.")}, rule.id


# --------------------------------------------------------------------------- hits and traps


def test_every_language_has_hits_and_traps() -> None:
    assert {lang for lang, _, _ in HITS} == set(LANGUAGES)
    assert {lang for lang, _ in TRAPS} == set(LANGUAGES)


@pytest.mark.parametrize(("lang", "text", "rule_id"), HITS,
                         ids=[f"{lang}:{rule}" for lang, _, rule in HITS])
def test_pack_phrase_fires_one_shot_and_typed(matcher: Matcher, lang: str, text: str,
                                              rule_id: str) -> None:
    for found in (matcher.match(text), typed(matcher, text)):
        mine = [m for m in found if m.rule.id == rule_id]
        assert mine, f"{rule_id} did not fire on {text!r}; got {[m.rule.id for m in found]}"
        m = mine[0]
        assert m.rule.languages == (lang,)
        assert m.matched == text[m.start:m.end] and m.matched.strip() == m.matched


@pytest.mark.parametrize(("lang", "text"), TRAPS, ids=[f"{lang}:{t}" for lang, t in TRAPS])
def test_ordinary_use_stays_quiet(matcher: Matcher, lang: str, text: str) -> None:
    assert [m.rule.id for m in matcher.match(text)] == []
    assert [m.rule.id for m in typed(matcher, text)] == []


def test_packs_fire_nothing_on_the_english_benign_corpus(ruleset: RuleSet) -> None:
    """No pack phrase collides with English school text (the corpus the lists are held to)."""
    packs_only = Matcher(RuleSet(tuple(r for r in ruleset.rules if r.languages != ("en",)),
                                 ruleset.exclusions))
    lines = benign(CORPUS_DIR) + benign(HELDOUT_DIR)
    fired = [(s.source, [m.rule.id for m in packs_only.match(s.text)]) for s in lines]
    assert [f for f in fired if f[1]] == []


# --------------------------------------------------------------------------- the default set


def test_select_packs() -> None:
    every = language_packs()
    assert select_packs(None) == select_packs(["all"]) == select_packs(["ALL"]) == every
    assert select_packs([]) == ()
    assert select_packs(["ur-latn", "cy", "cy"]) == ("cy", "ur-Latn")
    with pytest.raises(ValueError, match="unknown language pack 'xx'.*cy"):
        select_packs(["cy", "xx"])
    with pytest.raises(TypeError):
        select_packs("cy")  # type: ignore[arg-type]  # a string is not a list of codes


def test_default_set_is_the_lists_plus_the_chosen_packs() -> None:
    lists = load_dirs(default_dir())
    everything = load_defaults()
    assert {r.id for r in lists.rules} < {r.id for r in everything.rules}
    assert {lang for r in everything.rules for lang in r.languages} == {"en", *LANGUAGES}
    welsh = load_defaults(["cy"])
    assert {lang for r in welsh.rules for lang in r.languages} == {"en", "cy"}
    assert load_defaults([]).digest() == lists.digest()
    names = set(default_files(["pl", "ur-Latn"]))
    assert names == {p.name for p in default_dir().glob("*.toml")} | {
        f"{PACK_PREFIX}pl.toml", f"{PACK_PREFIX}ur-Latn.toml"}


def test_a_policy_carries_packs_under_names_the_agent_accepts() -> None:
    files = {f"default/{name}": text for name, text in default_files().items()}
    assert all(_WORDLIST_NAME.fullmatch(name) for name in files)
    assert load_policy_files(files).digest() == load_defaults().digest()


def test_readme_and_admin_guide_document_the_packs() -> None:
    readme = (default_dir() / "README.md").read_text(encoding="utf-8")
    for code in LANGUAGES:
        count = len(load_file(pack_dir() / f"{code}.toml").rules)
        assert re.search(rf"\| `lang/{re.escape(code)}\.toml` \|[^|]+\| {count} \|", readme), code
    assert "native speakers" in readme and "language_packs" in readme
    guide = (ROOT / "docs" / "admin-guide.md").read_text(encoding="utf-8")
    assert "language_packs = [" in guide and " ".join(sorted(LANGUAGES)) in guide


# --------------------------------------------------------------------------- vigil match

ONE_PER_LANGUAGE = {lang: (text, rule) for lang, text, rule in reversed(HITS)}


def _vigil_match(*args: str, lines: list[str]) -> list[dict[str, object]]:
    proc = subprocess.run([sys.executable, "-m", "vigil", "match", "--no-model", *args],
                          input=("\n".join(lines) + "\n").encode("utf-8"), capture_output=True,
                          cwd=ROOT, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    return [json.loads(line) for line in proc.stdout.decode("utf-8").splitlines()]


def test_vigil_match_runs_the_packs_by_default_and_can_leave_them_out() -> None:
    lines = [text for text, _ in ONE_PER_LANGUAGE.values()]
    records = _vigil_match("--kind", "typed", lines=lines)
    assert [r["text"] for r in records] == lines
    for (text, rule), record in zip(ONE_PER_LANGUAGE.values(), records, strict=True):
        found = {m["rule"]: m for m in record["matches"]}  # type: ignore[union-attr]
        assert rule in found, (text, record)
        assert found[rule]["source"] == "list"
        assert found[rule]["matched"] == text[found[rule]["start"]:found[rule]["end"]]
    without = _vigil_match("--language-packs", "none", lines=lines)
    assert all(not any(m["rule"].count(".") == 2 for m in r["matches"])  # type: ignore[union-attr]
               for r in without)
    welsh_only = _vigil_match("--language-packs", "cy", lines=lines)
    fired = {m["rule"] for r in welsh_only for m in r["matches"]}  # type: ignore[union-attr]
    assert {rule for rule in fired if rule.count(".") == 2} == {ONE_PER_LANGUAGE["cy"][1]}


def test_vigil_match_refuses_an_unknown_pack_in_one_line() -> None:
    proc = subprocess.run([sys.executable, "-m", "vigil", "match", "--no-model",
                           "--language-packs", "cy,klingon"], input=b"x\n",
                          capture_output=True, cwd=ROOT, timeout=120, check=False)
    assert proc.returncode == 2 and proc.stdout == b""
    assert proc.stderr.decode().count("\n") == 1 and "klingon" in proc.stderr.decode()
