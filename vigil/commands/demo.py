"""`vigil demo`: run a collector, its dashboard and an agent on this machine (see vigil/_demo)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

__all__ = ["register"]


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "demo",
        help="run the whole system on this machine and show where to look",
        description="Initialise a collector with demo keyholders, serve it with its dashboard, "
        "run an agent (on a virtual display when there is none), type trigger and harmless "
        "sentences, and print the dashboard URL and passwords. Ctrl-C stops everything.",
    )
    p.add_argument("--check", action="store_true",
                   help="non-interactive: exit 0 once a capture has reached the collector and "
                   "opened with the head's key")
    p.add_argument("--dir", type=Path, default=None,
                   help="where to keep the demo's data (default: a new temporary directory)")
    p.add_argument("--port", type=int, default=0,
                   help="HTTPS port on 127.0.0.1 (default: any free one)")
    p.add_argument("--timeout", type=float, default=120.0,
                   help="seconds to wait for the first capture (default 120)")
    p.add_argument("--virtual-display", action="store_true",
                   help="use Xvfb even when $DISPLAY is set")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from vigil._demo import DemoOptions, run

    options = DemoOptions(directory=args.dir, port=args.port, check=args.check,
                          timeout=args.timeout, virtual_display=args.virtual_display)
    return run(options, sys.stdout)
