"""Write the "said of someone else, or taught" ``unless`` contexts into the topic rules (issue 13).

Why generated: a topic word ("self harm", "anorexia", "county lines") fires on a pupil asking how
to help a friend, on lessons, policies and help pages far more often than on a disclosure, and
the data's labelling rule is that help for someone else is benign (wordlists/README.md, "Said of
someone else, or taught"). The contexts that show this are the same frames for every topic word
("friend who X", "signs of X", "X and <another PSHE topic>"), so they come from one table here
and are reviewed as a set; writing them by hand per rule would drift. Hand-written contexts that a
rule already had are kept ahead of the generated block; rerunning replaces only the block.

    PYTHONPATH=. .venv/bin/python scripts/wordlist_contexts.py [--check]

``--check`` changes nothing and exits 1 if a list is not what this table writes.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

__all__ = ["contexts", "main"]

ROOT = Path(__file__).resolve().parent.parent
LISTS = ROOT / "wordlists"
MARK = "  # said of someone else, or taught (issue 13; scripts/wordlist_contexts.py writes this block)"

# X is the topic as a verb: "people who self harm"
HELP_VERB = ["friend who {x}", "friends who {x}", "mate who {x}", "someone who {x}",
             "somebody who {x}", "people who {x}", "person who {x}", "anyone who {x}",
             "classmate who {x}", "pupils who {x}", "students who {x}", "young people who {x}",
             "child who {x}", "children who {x}", "kids who {x}", "teenagers who {x}",
             "why people {x}", "why do people {x}", "if a friend {x}", "if someone {x}",
             "help someone {x}", "support someone {x}"]
# X is a participle or an adjective: "my friend is being bullied", "someone who is suicidal"
HELP_BE = ["friend who is {x}", "friend whos {x}", "friend is {x}", "friend has been {x}",
           "mate is {x}", "mate has been {x}", "someone who is {x}", "someone whos {x}",
           "someone is {x}", "somebody is {x}", "friends are {x}", "sister is {x}",
           "brother is {x}", "cousin is {x}", "classmate is {x}", "she is {x}", "he is {x}",
           "shes {x}", "hes {x}", "they are {x}", "a pupil is {x}", "a child is {x}",
           "if a friend is {x}", "if someone is {x}", "people who are {x}"]
# X is a past participle: "my friend has self harmed"
HELP_HAS = ["friend has {x}", "friend who has {x}", "someone who has {x}", "people who have {x}",
            "she has {x}", "he has {x}", "mate has {x}"]
# X is the topic as a noun: "someone with anorexia"
HELP_NOUN = ["someone with {x}", "anyone with {x}", "friend with {x}", "friend has {x}",
             "people with {x}", "helping someone with {x}", "help someone with {x}",
             "support someone with {x}", "affected by {x}", "friend about {x}",
             "someone about {x}", "who has {x}", "who have {x}", "who had {x}"]
LESSON = ["learned about {x}", "learnt about {x}", "learning about {x}", "talked about {x}",
          "discussed {x}", "lesson on {x}", "lesson about {x}", "lessons on {x}",
          "lessons about {x}", "assembly about {x}", "assembly on {x}", "talk on {x}",
          "signs of {x}", "myths about {x}", "facts about {x}", "dangers of {x}", "risks of {x}",
          "law on {x}", "law about {x}", "information about {x}", "info about {x}",
          "leaflet about {x}", "poster about {x}", "essay on {x}", "essay about {x}",
          "research on {x}", "project on {x}", "presentation on {x}", "views on {x}",
          "attitudes to {x}", "how to help {x}",
          "how to support {x}", "helpline for {x}", "helplines for {x}", "support for {x}",
          "impact of {x}", "effects of {x}", "causes of {x}", "statistics on {x}", "rates of {x}",
          "awareness of {x}", "a story about {x}", "a book about {x}", "a film about {x}",
          "a documentary about {x}", "the topic of {x}", "topics like {x}", "such as {x}",
          "form of {x}", "disclosure of {x}", "disclosures of {x}", "concerns about {x}",
          "about the {x}", "was about {x}", "is about {x}", "us about {x}", "what {x} is"]
# help and information pages, as a window title or a search reads them
SITES = ["nhs {x}", "mind {x}", "youngminds {x}", "childline {x}", "thinkuknow {x}", "kooth {x}",
         "samaritans {x}", "papyrus {x}", "beat {x}", "frank {x}"]
# X first: "self harm is a sign", "Self-harm - Google Chrome"
AFTER = ["{x} is a", "{x} is an", "{x} can", "{x} affects", "{x} awareness", "{x} helpline",
         "{x} helplines", "{x} support", "{x} charity", "{x} prevention", "{x} statistics",
         "{x} in teenagers", "{x} in young people", "{x} and how", "{x} google chrome",
         "{x} microsoft edge", "{x} mozilla firefox", "{x} nhs", "{x} childline",
         "{x} young minds"]
# said of people in general ("how to get help if you feel suicidal")
GENERAL = ["if you feel {x}", "if we feel {x}", "if they feel {x}", "if someone feels {x}",
           "if you are feeling {x}", "if youre feeling {x}", "if you're feeling {x}",
           "if you ever feel {x}", "people who feel {x}", "someone who feels {x}",
           "when people feel {x}"]
# the PSHE topics lessons and policies list together: "anorexia and bulimia"
TOPICS = ["suicide", "self harm", "selfharm", "eating disorders", "mental health", "depression",
          "anxiety", "bullying", "cyberbullying", "sexting", "sextortion", "grooming", "drugs",
          "alcohol", "county lines", "gangs", "knife crime", "radicalisation", "revenge porn",
          "anorexia", "bulimia", "abuse", "consent", "online safety", "heroin", "cocaine",
          "cannabis", "morphine", "nudes", "exploitation", "loneliness", "trolling",
          "cyber bullying", "loot boxes", "gambling", "vaping"]
# reported speech: "he's been cutting"
THIRD = ["hes {x}", "he's {x}", "shes {x}", "she's {x}", "he has {x}", "she has {x}",
         "friend has {x}", "mate has {x}", "theyve {x}", "they've {x}", "friend says shes {x}",
         "friend says hes {x}", "who has {x}"]
# advice a lesson gives about a request rule ("never send nudes"): not "dont {x}", which is how a
# threat reads ("if u dont send nudes ill post the first one"), nor bare "never {x}" ("why do u
# never send nudes"), nor "pressure to {x}" ("im under pressure to send nudes"); branch detect6
ADVICE = ["not to {x}", "to never {x}", "should never {x}", "should not {x}", "shouldnt {x}",
          "shouldn't {x}", "said never {x}", "told us never {x}", "told us not to {x}",
          "taught us not to {x}", "us never to {x}", "us not to {x}", "never ever {x}",
          "why you shouldnt {x}",
          "why you shouldn't {x}", "dangers of {x}", "risks of {x}"]
# the law and the age limit for a thing pupils may buy ("what age can u buy a vape"); detect6
LAW = ["age can you {x}", "age can u {x}", "age to {x}", "age do you have to be to {x}",
       "old do you have to be to {x}", "old to {x}", "legal to {x}", "illegal to {x}",
       "illegal for shops to {x}", "law on who can {x}", "is it legal to {x}"]
# Not frames (removed after detect6, by review): a request made of another child ("a guy asked
# my friend to send nudes") and another child's intent reported ("she said she wants to end it
# all"). Both tell the DSL about a child at risk, and an unless would silence the sentence model
# for that category too; help *for* a friend stays benign, a friend's disclosure does not.
# the idiom, not the wish ("i want to die of embarrassment"); detect6
DIE_OF = ["{x} of embarrassment", "{x} of cringe", "{x} of boredom"]
# the law on carrying a weapon, as a lesson teaches it; detect6
WEAPON_LAW = ["{x} is illegal", "{x} can get you", "{x} is a crime", "{x} is against the law",
              "sentence for {x}", "penalty for {x}", "law on {x}", "dangers of {x}",
              "risks of {x}", "why young people start {x}", "why teenagers start {x}",
              "learned about {x}", "lesson on {x}", "assembly about {x}", "talk about {x}"]
# school work about the topic, where "my X" is not a disclosure ("my self harm poster"); detect6
MY_WORK = ["{x} " + w for w in ("project", "essay", "poster", "presentation", "homework",
                                "leaflet", "research", "assignment", "coursework", "worksheet",
                                "talk", "speech", "quiz", "notes", "revision", "display",
                                "assembly", "lesson", "awareness")]
BUILD_GAMES = ("minecraft", "roblox", "terraria", "fortnite", "gta", "the sims", "sims")
GAMES = ("fifa", "fortnite", "cod", "chess", "mario kart", "smash", "minecraft", "rocket league",
         "2k", "apex", "valorant", "pool", "uno", "monopoly", "scrabble", "football", "badminton",
         "table tennis", "ping pong", "cards")
SAID = ("bod", "mae")              # Welsh: "(that) she/he ... wants to die"
WHO = ("hi", "o", "e", "nhw")
PL_SAYS = ("mowi", "mówi", "powiedziala", "powiedziała", "powiedzial", "powiedział", "pisze",
           "napisala", "napisała", "napisal", "napisał")
SO_SAID = ("tiri", "yiri", "tidhi", "yidhi")


def frames(before: list[str], after: list[str], person: tuple[str, ...] = ()) -> list[str]:
    """The contexts of one topic: ``before`` are its forms after a frame's words, ``after`` its
    full words before them; ``person`` names the frames that say it of someone else, by the
    topic's grammar ("verb", "be", "has"); the noun frames and lessons always apply."""
    said_of = {"verb": HELP_VERB, "be": HELP_BE, "has": HELP_HAS}
    out: list[str] = []
    for x in before:
        for form in person:
            out += [f.format(x=x) for f in said_of[form]]
        out += [f.format(x=x) for f in HELP_NOUN + LESSON + SITES]
        out += [f"{y} and {x}" for y in TOPICS if y not in (x, x.replace(" ", ""))]
    for x in after:
        out += [f.format(x=x) for f in AFTER]
        out += [f"{x} and {y}" for y in TOPICS if y not in (x, x.replace(" ", ""))]
    return out


def contexts() -> dict[str, list[str]]:
    """Rule id -> the generated contexts, in order, without repeats."""
    table = {
        "self_harm.self_harm": frames(["self harm", "selfharm"], ["self harm", "selfharm"],
                                      ("verb",)),
        "self_harm.selfharm": frames(["selfharm"], ["selfharm"], ("verb",)),
        "self_harm.self_harming": frames(["self harming", "selfharming"], [], ("be",)),
        "self_harm.self_harmed": frames(["self harmed", "selfharmed"], [], ("has",)),
        "suicide.suicid": frames(["suicid"], ["suicide", "suicidal"], ("be",))
        + [f.format(x="suicid") for f in GENERAL],
        "grooming.sexting": frames(["sexting"], ["sexting"]),
        "pornography.nudes": frames(["nudes"], ["nudes"])
        + [f"{w} being blackmailed with nudes" for w in ("friend is", "whos", "who is",
                                                          "someone is")]
        + frames(["sharing nudes", "shares nudes", "share nudes", "sends nudes"], [],
                 ("verb", "be")),
        "eating_disorder.anorexi": frames(["anorexi"], ["anorexia"]),
        "eating_disorder.bulimi": frames(["bulimi"], ["bulimia"]),
        "bullying.being_bullied": frames(["being bullied"], [], ("be",)),
        "bullying.getting_bullied": frames(["getting bullied"], [], ("be",)),
        "drugs.county_lines": frames(["county lines"], ["county lines"]),
        "drugs.cocaine": frames(["cocaine"], ["cocaine"]),
        "drugs.heroin": frames(["heroin"], ["heroin"]),
        "drugs.ketamine": frames(["ketamine"], ["ketamine"]),
        "gambling.gambling_addiction": frames(["gambling addiction"], ["gambling addiction"]),
        "filter_bypass.dark_web": frames(["dark web"], ["dark web"]),
        "self_harm.been_cutting": [t.format(x="been cutting") for t in THIRD],
        "eating_disorder.skipping_meals": [
            "keeps skipping meals", "friend is skipping meals", "shes skipping meals",
            "hes skipping meals", "she's skipping meals", "he's skipping meals",
            "friends are skipping meals", "mate is skipping meals", "sister is skipping meals",
            "brother is skipping meals"],
        "grooming.send_pics": [f"{w} being pressured to send pics"
                               for w in ("whos", "who is", "friend is", "someone is")],
        "violence.murder_you": [f"murder you {p} {g}" for p in ("at", "in", "on") for g in GAMES],
        "drugs.weed": [f.format(x=x) for x in ("smoking weed", "selling weed") for f in HELP_BE],
        # branch detect6: selling said of someone else, advice about a request, the law on vapes
        "drugs.selling_drugs": frames(["selling drugs"], [], ("be",)),
        "drugs.sell_drugs": frames(["sell drugs"], [], ("verb",)),
        "drugs.selling_vapes": frames(["selling vapes"], [], ("be",)),
        "drugs.sell_vapes": frames(["sell vapes"], [], ("verb",)),
        "grooming.send_nudes": [f.format(x="send nudes") for f in ADVICE],
        "grooming.send_noods": [f.format(x="send noods") for f in ADVICE],
        "grooming.send_noodz": [f.format(x="send noodz") for f in ADVICE],
        "drugs.buy_a_vape": [f.format(x="buy a vape") for f in LAW],
        "drugs.buy_vapes": [f.format(x="buy vapes") for f in LAW],
        "suicide.wanna_die": [f.format(x="wanna die") for f in DIE_OF],
        "violence.carrying_a_knife": [f.format(x="carrying a knife") for f in WEAPON_LAW],
        "violence.carry_a_blade": [f.format(x="carry a blade") for f in WEAPON_LAW],
        "extremism.make_a_bomb": [f"make a bomb {p} {g}" for p in ("in", "on")
                                  for g in BUILD_GAMES]
        + [f"{g} how to make a bomb" for g in BUILD_GAMES],
        "bullying.hang_yourself": ["hang yourself upside down"],
        **{rid: [f.format(x=x) for f in MY_WORK] for rid, x in (
            ("self_harm.my_self_harm", "my self harm"), ("self_harm.my_selfharm", "my selfharm"),
            ("self_harm.my_overdose", "my overdose"), ("eating_disorder.my_anorexia", "my anorexia"),
            ("eating_disorder.my_bulimia", "my bulimia"),
            ("suicide.my_suicidal_thoughts", "my suicidal thoughts"),
            ("suicide.my_suicidal_feelings", "my suicidal feelings"),
            ("suicide.my_suicide_attempt", "my suicide attempt"))},
        "filter_bypass.vpn": ["access any vpn", "vpn virtual private network", "vpn solution"]
        + [f.format(x="use a vpn") for f in LAW],
        "pornography.porn": [f"revenge porn and {y}" for y in TOPICS]
        + [f"{y} and revenge porn" for y in TOPICS]
        + ["sextortion revenge porn", "about revenge porn", "learned about porn",
           "talked about porn", "lesson on porn", "dangers of porn", "effects of porn",
           "impact of porn"],
        "suicide.feel_suicidal": [
            "if you feel suicidal", "if we feel suicidal", "if they feel suicidal",
            "if you ever feel suicidal", "if we ever feel suicidal", "people who feel suicidal",
            "someone who may feel suicidal", "when people feel suicidal",
            "why people feel suicidal", "make someone feel suicidal",
            "makes people feel suicidal"],
        "suicide.want_to_die": ["want to die in your arms"]
        + [f.format(x="want to die") for f in DIE_OF],
        # language packs: a friend who self-harms, a lesson, reported speech
        "self_harm.es.autolesi": [
            "amigo que se autolesi", "amiga que se autolesi", "alguien que se autolesi",
            "alguien se autolesi", "persona que se autolesi", "personas que se autolesi",
            "companero que se autolesi", "companera que se autolesi", "sobre autolesi",
            "sobre la autolesi", "sobre las autolesi"],
        "self_harm.pt.automutila": [
            "amigo que se automutila", "amiga que se automutila", "alguem que se automutila",
            "pessoas que se automutila", "sobre automutila", "sobre a automutila",
            "mental e automutila"],
        "self_harm.fr.automutil": [  # the French stem also fires on Portuguese automutilação
            "ami qui s'automutil", "amie qui s'automutil", "quelqu'un qui s'automutil",
            "sur l'automutil", "sur automutil", "mental e automutila", "sobre automutila",
            "sobre a automutila"],
        "suicide.pl.chce_umrzec": [f"{v} ze chce umrzec" for v in PL_SAYS],
        "suicide.cy.isio_marw": [f"{a} {b} isio marw" for a in SAID for b in WHO],
        "suicide.cy.eisiau_marw": [f"{a} {b} eisiau marw" for a in SAID for b in WHO],
        "suicide.cy.moyn_marw": [f"{a} {b} moyn marw" for a in SAID for b in WHO],
        "suicide.ur_latn.marna_chahti": ["woh marna chahti", "wo marna chahti", "voh marna chahti"],
        "suicide.ur_latn.marna_chahta": ["woh marna chahta", "wo marna chahta", "voh marna chahta"],
        "suicide.so.rabaa_inaan_dhinto": [f"{v} waxaan rabaa inaan dhinto" for v in SO_SAID],
        "suicide.so.doonayaa_inaan_dhinto": [f"{v} waxaan doonayaa inaan dhinto"
                                             for v in SO_SAID],
        "self_harm.bn.nijer_khoti_kori": ["বন্ধু নিজের ক্ষতি করে", "যে নিজের ক্ষতি করে"],
    }
    return {rid: list(dict.fromkeys(phrases)) for rid, phrases in table.items()}


def _block(hand: list[str], generated: list[str]) -> str:
    lines = ["unless = ["]
    if hand:
        lines.append("  " + ", ".join(f'"{p}"' for p in hand) + ",")
    lines.append(MARK)
    row = " "
    for phrase in generated:
        item = f' "{phrase}",'
        if len(row) + len(item) > 100:
            lines.append(row)
            row = " "
        row += item
    lines += [row, "]"]
    return "\n".join(lines)


def rewrite(text: str, table: dict[str, list[str]]) -> tuple[str, set[str]]:
    """``text`` with each listed rule's generated block replaced; and the ids it found."""
    found: set[str] = set()
    for rid, generated in table.items():
        m = re.search(rf'\nid = "{re.escape(rid)}"\n(.*?)(?=\n\n|\Z)', text, re.DOTALL)
        if not m:
            continue
        found.add(rid)
        body = m.group(1)
        old = re.search(r"unless = \[(.*?)\n?\]", body, re.DOTALL)
        hand_text = old.group(1).split(MARK)[0] if old else ""
        hand = [p for p in re.findall(r'"([^"]*)"', hand_text) if p not in generated]
        block = _block(hand, generated)
        body = body.replace(old.group(0), block) if old else f"{body}\n{block}"
        text = text[:m.start(1)] + body + text[m.end(1):]
    return text, found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if stale")
    args = parser.parse_args(argv)
    table = contexts()
    seen: set[str] = set()
    stale = []
    for path in sorted(LISTS.glob("**/*.toml")):
        text = path.read_text(encoding="utf-8")
        new, found = rewrite(text, table)
        seen |= found
        if new != text:
            stale.append(path)
            if not args.check:
                path.write_text(new, encoding="utf-8")
    missing = sorted(set(table) - seen)
    for rid in missing:
        print(f"wordlist_contexts: no rule {rid}", file=sys.stderr)
    for path in stale:
        print(f"{'stale' if args.check else 'wrote'} {path.relative_to(ROOT)}")
    return 1 if missing or (args.check and stale) else 0


if __name__ == "__main__":
    raise SystemExit(main())
