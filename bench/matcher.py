"""Benchmark the trigger engine: cost per keystroke and per window title against rule count.

Builds synthetic wordlists of 1k, 20k and 50k rules (written as TOML and loaded through
core.rules, so the whole path is measured), then:

* feeds 100,000 keystrokes of synthetic typing (words, spaces, typos with Backspace, an Enter per
  sentence, a rule phrase now and then, sometimes obfuscated) through ``Matcher.stream``;
* matches 10,000 window titles with ``Matcher.match``;
* runs a baseline in the same process: one Python ``re`` alternation of every phrase (whole words,
  case-insensitive, no folding), searched over the last 64 typed characters at each keystroke and
  over each title. The baseline is far slower, so it times a sample (see the ``re n`` column).

Times are per call, in microseconds, normalisation included. The sizes run in interleaved rounds
(default 3), so that load from other processes on a shared machine hits them alike: medians and
p99 pool all rounds, the mean is the median of the round means. Run:

    .venv/bin/python bench/matcher.py            # add --quick for a smoke run
"""

from __future__ import annotations

import argparse
import gc
import os
import random
import re
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.matcher import Matcher
from core.rules import CATEGORIES, RuleSet, load_dirs

__all__ = ["main"]

SYLLABLES = ("ka", "lo", "mi", "ne", "tu", "ra", "shi", "po", "vek", "dar", "zul", "fen", "gri",
             "bo", "qua", "lin", "mor", "sa", "tep", "wex", "yor", "ju", "hal", "cre", "dov")

# Benign typing: what pupils write in lessons, chats and searches.
_PROSE = (
    "the and to of a in is it you that he was for on are with as i his they be at one have this "
    "from or had by word but what some we can out other were all there when up use your how said "
    "an each she which do their time if will way about many then them write would like so these "
    "her long make thing see him two has look more day could go come did number sound no most "
    "people my over know water than call first who may down side been now find any new work part "
    "take get place made live where after back little only round man year came show every good "
    "me give our under name very through just form sentence great think say help low line differ "
    "turn cause much mean before move right boy old too same tell does set three want air well "
    "also play small end put home read hand port large spell add even land here must big high "
    "such follow act why ask men change went light kind off need house picture try us again "
    "animal point mother world near build self earth father head stand own page should country "
    "found answer school grow study still learn plant cover food sun four between state keep eye "
    "never last let thought city tree cross farm hard start might story saw far sea draw left "
    "late run while press close night real life few north open seem together next white children "
    "begin got walk example ease paper group always music those both mark often letter until mile "
    "river car feet care second book carry took science eat room friend began idea fish mountain "
    "stop once base hear horse cut sure watch colour face wood main enough plain girl usual young "
    "ready above ever red list though feel talk bird soon body dog family direct pose leave song "
    "measure door product black short numeral class wind question happen complete ship area half "
    "rock order fire south problem piece told knew pass since top whole king space heard best "
    "hour better true during hundred five remember step early hold west ground interest reach "
    "fast verb sing listen six table travel less morning ten simple several vowel toward war lay "
    "against pattern slow centre love person money serve appear road map rain rule govern pull "
    "cold notice voice unit power town fine certain fly fall lead cry dark machine note wait plan "
    "figure star box noun field rest correct able pound done beauty drive stood contain front "
    "teach week final gave green oh quick develop ocean warm free minute strong special mind "
    "behind clear tail produce fact street inch multiply nothing course stay wheel full force "
    "blue object decide surface deep moon island foot system busy test record boat common gold "
    "possible plane stead dry wonder laugh thousand ago ran check game shape equate hot miss "
    "brought heat snow tyre bring yes distant fill east paint language among homework maths "
    "assessment therapist sussex cocktail skillset analysis scunthorpe essex classic"
)
TEXT_WORDS = _PROSE.split()

TITLE_APPS = ("Google Chrome", "Mozilla Firefox", "Microsoft Word", "YouTube", "Notepad",
              "Microsoft Teams", "Scratch 3.0", "Minecraft Education", "File Explorer")


def synthetic_rules(n: int, seed: int) -> list[tuple[str, str, int, str, list[str]]]:
    """(id, phrase, severity, mode, unless) for ``n`` distinct made-up phrases."""
    rnd = random.Random(seed)
    seen: set[str] = set()
    out = []
    while len(out) < n:
        words = [
            "".join(rnd.choice(SYLLABLES) for _ in range(rnd.randint(2, 3)))
            for _ in range(rnd.choice((1, 1, 1, 2, 2, 3)))
        ]
        phrase = " ".join(words)
        if phrase in seen:
            continue
        seen.add(phrase)
        mode = "embedded" if len(words) == 1 and rnd.random() < 0.1 else "word"
        unless = [f"{phrase} {rnd.choice(TEXT_WORDS)}"] if rnd.random() < 0.05 else []
        out.append((f"r{len(out)}", phrase, rnd.randint(1, 5), mode, unless))
    return out


def write_lists(rules: list[tuple[str, str, int, str, list[str]]], directory: Path) -> None:
    per_category: dict[str, list[str]] = {c: [] for c in CATEGORIES}
    for i, (rule_id, phrase, severity, mode, unless) in enumerate(rules):
        category = CATEGORIES[i % len(CATEGORIES)]
        lines = ["[[rule]]", f'id = "{category}.{rule_id}"', f'phrase = "{phrase}"',
                 f"severity = {severity}"]
        if mode != "word":
            lines.append(f'mode = "{mode}"')
        if unless:
            lines.append("unless = [" + ", ".join(f'"{u}"' for u in unless) + "]")
        per_category[category].append("\n".join(lines))
    for category, blocks in per_category.items():
        body = f'category = "{category}"\n\n' + "\n\n".join(blocks) + "\n"
        if category == "pornography":
            body += '\n[[exclude]]\nphrase = "sex education"\n'
        (directory / f"{category}.toml").write_text(body, encoding="utf-8")


def obfuscate(phrase: str, rnd: random.Random) -> str:
    how = rnd.randrange(5)
    if how == 0:
        return " ".join(phrase.replace(" ", ""))                    # k i l l
    if how == 1:
        return phrase.replace("o", "0").replace("e", "3").replace("a", "4")  # leet
    if how == 2:
        return phrase[:-1] + phrase[-1] * 4                          # stretched
    if how == 3:
        return phrase.upper()
    return phrase


@dataclass
class Keystroke:
    kind: str   # "feed", "key", "end"
    value: str


def typing(n: int, phrases: list[str], seed: int) -> list[Keystroke]:
    """``n`` keystrokes: sentences of benign words, a rule phrase in about one in ten."""
    rnd = random.Random(seed)
    out: list[Keystroke] = []
    while len(out) < n:
        words = [rnd.choice(TEXT_WORDS) for _ in range(rnd.randint(4, 14))]
        if rnd.random() < 0.1:
            words.insert(rnd.randrange(len(words) + 1), obfuscate(rnd.choice(phrases), rnd))
        for ch in " ".join(words):
            out.append(Keystroke("feed", ch))
            if rnd.random() < 0.03:  # a typo, noticed at once
                out.append(Keystroke("feed", rnd.choice("qxzj")))
                out.append(Keystroke("key", "backspace"))
        out.append(Keystroke("end", ""))
    return out[:n]


def titles(n: int, phrases: list[str], seed: int) -> list[str]:
    rnd = random.Random(seed)
    out = []
    for _ in range(n):
        words = [rnd.choice(TEXT_WORDS) for _ in range(rnd.randint(2, 9))]
        if rnd.random() < 0.05:
            words.append(obfuscate(rnd.choice(phrases), rnd))
        out.append(f"{' '.join(words).capitalize()} - {rnd.choice(TITLE_APPS)}")
    return out


# Per-call clock: wall time by default; --clock cpu uses this thread's CPU time, which leaves out
# the time other processes hold the CPU (the bench machine is shared).
CLOCK = time.perf_counter_ns


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def time_stream(matcher: Matcher, keys: list[Keystroke]) -> tuple[list[float], int]:
    stream = matcher.stream(capacity=512)
    feed, key, end = stream.feed, stream.key, stream.end_utterance
    clock = CLOCK
    times: list[float] = []
    found = 0
    for k in keys:
        if k.kind == "feed":
            t0 = clock()
            r = feed(k.value)
            t1 = clock()
        elif k.kind == "key":
            t0 = clock()
            r = key(k.value)
            t1 = clock()
        else:
            t0 = clock()
            r = end()
            t1 = clock()
        times.append((t1 - t0) / 1000)
        found += len(r)
    return times, found


def time_titles(match, items: list[str]) -> list[float]:
    clock = CLOCK
    times = []
    for t in items:
        t0 = clock()
        match(t)
        times.append((clock() - t0) / 1000)
    return times


def regex_baseline(ruleset: RuleSet, keys: list[Keystroke], items: list[str],
                   sample: int) -> tuple[float, float]:
    """Median µs per keystroke and per title for one ``re`` alternation of all phrases."""
    phrases = sorted({r.phrase for r in ruleset.rules}, key=len, reverse=True)
    pattern = re.compile(r"\b(?:" + "|".join(re.escape(p) for p in phrases) + r")\b",
                         re.IGNORECASE)
    buffer = ""
    clock = CLOCK
    per_key: list[float] = []
    for k in keys[:sample]:
        t0 = clock()
        if k.kind == "feed":
            buffer = (buffer + k.value)[-512:]
        elif k.kind == "key":
            buffer = buffer[:-1]
        else:
            buffer = ""
        pattern.search(buffer[-64:])
        per_key.append((clock() - t0) / 1000)
    per_title = time_titles(pattern.findall, items[: max(1, sample // 4)])
    return statistics.median(per_key), statistics.median(per_title)


@dataclass
class Built:
    matcher: Matcher
    keys: list[Keystroke]
    titles: list[str]
    load_s: float
    build_s: float
    memory: float


def build(size: int, n_keys: int, n_titles: int) -> Built:
    rules = synthetic_rules(size, seed=size)
    with tempfile.TemporaryDirectory() as tmp:
        write_lists(rules, Path(tmp))
        t0 = time.perf_counter()
        ruleset = load_dirs(tmp)
        load_s = time.perf_counter() - t0
    gc.collect()
    before = rss_mb()
    t0 = time.perf_counter()
    matcher = Matcher(ruleset)
    build_s = time.perf_counter() - t0
    gc.collect()
    memory = rss_mb() - before
    phrases = [p for _, p, _, _, _ in rules]
    keys = typing(n_keys, phrases, seed=7)
    time_stream(matcher, keys[:2000])  # warm the word cache as a running agent has it
    return Built(matcher, keys, titles(n_titles, phrases, seed=11), load_s, build_s, memory)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                        help="time each call by the wall clock (default) or by thread CPU time")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default 3)")
    args = parser.parse_args(argv)
    global CLOCK
    CLOCK = time.perf_counter_ns if args.clock == "wall" else time.thread_time_ns
    sizes = (1_000, 5_000) if args.quick else (1_000, 20_000, 50_000)
    n_keys, n_titles, sample = (10_000, 1_000, 300) if args.quick else (100_000, 10_000, 2_000)

    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cpus, load average "
          f"{os.getloadavg()[0]:.1f}, {args.clock} clock; {n_keys} keystrokes and {n_titles} "
          f"titles per size and round, {args.rounds} rounds; re baseline on the first {sample} "
          "keystrokes")
    header = (f"{'rules':>6} {'load s':>7} {'build s':>8} {'mem MB':>7} {'key med':>8} "
              f"{'key mean':>9} {'key p99':>8} {'title med':>10} {'title mean':>11} "
              f"{'matches':>8} {'re key med':>11} {'re title med':>13} {'re/ours':>8}")
    print(header)
    print("-" * len(header))
    built: dict[int, Built] = {size: build(size, n_keys, n_titles) for size in sizes}
    # The machine is shared: run the sizes in interleaved rounds so that a burst of load hits
    # them alike; medians and p99 pool every round, the mean is the median of the round means.
    key_times: dict[int, list[float]] = {size: [] for size in sizes}
    round_means: dict[int, list[float]] = {size: [] for size in sizes}
    title_times: dict[int, list[float]] = {size: [] for size in sizes}
    found: dict[int, int] = {}
    for _ in range(args.rounds):
        for size, b in built.items():
            times, found[size] = time_stream(b.matcher, b.keys)
            key_times[size] += times
            round_means[size].append(statistics.fmean(times))
            title_times[size] += time_titles(b.matcher.match, b.titles)
    summary: dict[int, tuple[float, float]] = {}
    for size, b in built.items():
        re_key, re_title = regex_baseline(b.matcher.ruleset, b.keys, b.titles, sample)
        med = statistics.median(key_times[size])
        mean = statistics.median(round_means[size])
        summary[size] = (med, mean)
        print(f"{size:>6} {b.load_s:>7.2f} {b.build_s:>8.2f} {b.memory:>7.1f} {med:>8.2f} "
              f"{mean:>9.2f} {percentile(key_times[size], 0.99):>8.2f} "
              f"{statistics.median(title_times[size]):>10.1f} "
              f"{statistics.fmean(title_times[size]):>11.1f} "
              f"{found[size]:>8} {re_key:>11.1f} {re_title:>13.1f} {re_key / med:>8.0f}x")
    row = 20_000 if 20_000 in summary else sizes[-1]
    print(f"per_keystroke_us_median {summary[row][0]:.3f}")
    print(f"per_keystroke_us_mean {summary[row][1]:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
