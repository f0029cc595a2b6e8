"""The ``vigil`` command: parses arguments and hands each sub-command to its module.

Each module in :mod:`vigil.commands` exposes ``register(subparsers)``, which adds its parser and
sets ``func`` to a handler taking the parsed arguments and returning an exit code. Handlers import
their component lazily, so ``vigil match`` never pays for FastAPI and ``vigil agent`` on a machine
without a display fails with one clear line.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from core.errors import VigilError

__all__ = ["build_parser", "main"]

# Sub-command modules, in the order they appear in --help.
COMMAND_MODULES = ("match", "keys", "crypto", "collector", "agent", "demo")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vigil", description="Vigil: an open safeguarding monitor for schools."
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(f"vigil.commands.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"vigil.commands.{name}":
                continue  # that component is not built yet
            raise
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except VigilError as err:
        print(f"vigil: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
