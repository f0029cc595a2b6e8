"""``vigil match``: run the trigger engine over lines of stdin, one JSON object per line.

The contract (issue 2) other components and checks rely on: for each input line, in order,
``{"text": line, "matches": [{"rule", "category", "severity", "start", "end", "matched"}]}``
with character offsets into the line and ``matched == text[start:end]``; exit 0; a bad wordlist
file exits 2 with one line naming it.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from typing import BinaryIO

__all__ = ["register", "run"]


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "match",
        help="match lines of stdin against the wordlists (JSON lines out)",
        description="Read UTF-8 text from stdin, one item per line, and write one JSON object "
                    "per line with the rules each line triggers.",
    )
    parser.add_argument(
        "--kind", choices=("typed", "title"), default="title",
        help="typed: feed each line through the keystroke stream; title: match it whole "
             "(default). Both give the same matches.",
    )
    parser.add_argument(
        "--wordlists", metavar="DIR", action="append", type=str,
        help="directory of *.toml rule files instead of the default lists; repeat to layer a "
             "school's lists over others (later directories override earlier ones)",
    )
    parser.set_defaults(func=run)


def _lines(stream: BinaryIO) -> Iterator[str]:
    for raw in stream:
        line = raw.decode("utf-8", errors="replace")
        if line.endswith("\n"):
            line = line[:-1]
            line = line.removesuffix("\r")
        yield line


def run(args: argparse.Namespace) -> int:
    from core import rules
    from core.matcher import Matcher

    ruleset = rules.load_dirs(*(args.wordlists or [rules.default_dir()]))
    matcher = Matcher(ruleset)
    out = sys.stdout.buffer
    for line in _lines(sys.stdin.buffer):
        if args.kind == "typed":
            # Room for the whole line, so that offsets from the stream index the line itself.
            stream = matcher.stream(capacity=max(512, len(line) + 1))
            found = []
            for ch in line:
                found.extend(stream.feed(ch))
            found.extend(stream.end_utterance())
            found.sort(key=lambda m: (m.start, m.end, m.rule.id))
        else:
            found = matcher.match(line)
        record = {"text": line, "matches": [m.as_dict() for m in found]}
        out.write(json.dumps(record, ensure_ascii=False).encode("utf-8") + b"\n")
        out.flush()
    return 0
