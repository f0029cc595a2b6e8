"""``vigil seal``, ``vigil open``, ``vigil grant``, ``vigil revoke``: sealed events from the shell.

All four read the envelope (or the plain body) from standard input and write to standard output
only once the whole operation has succeeded, so a failure leaves stdout empty: a script that pipes
``vigil open`` into a file never gets half a screenshot.
"""

from __future__ import annotations

import argparse
import json
import sys
import uuid
from datetime import UTC, datetime
from typing import Any

from core.errors import EnvelopeError, MetadataMismatch, VigilError
from vigil.commands.keys import PasswordSource

__all__ = ["default_meta", "register"]


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    seal = subparsers.add_parser("seal", help="seal stdin to keyholders' public keys")
    seal.add_argument("--to", action="append", required=True, metavar="PUB",
                      help="a recipient's .pub file (repeat for each)")
    seal.add_argument("--meta", metavar="JSON", default="{}",
                      help="clear metadata fields (event_id, device_id, time, category, "
                           "severity, rule, source); missing ones get defaults")
    seal.add_argument("--header", metavar="JSON", default="{}",
                      help="the sealed header (a JSON object)")
    seal.set_defaults(func=_seal)

    open_ = subparsers.add_parser("open", help="open a sealed event from stdin")
    open_.add_argument("--key", required=True, metavar="KEY", help="your private key file")
    open_.add_argument("--password-stdin", action="store_true",
                       help="the first line of stdin is the password; the envelope follows")
    open_.add_argument("--header-out", metavar="PATH",
                       help="also write the sealed header and metadata as JSON to PATH")
    open_.add_argument("--expect", metavar="JSON",
                       help="metadata fields the capture must have been sealed with (e.g. "
                            "the severity and category it is listed under); a difference "
                            "refuses to open it")
    open_.set_defaults(func=_open)

    grant = subparsers.add_parser("grant", help="add a recipient to a sealed event")
    grant.add_argument("--key", required=True, metavar="KEY", help="a current recipient's key")
    grant.add_argument("--to", required=True, metavar="PUB", help="the new recipient's .pub")
    grant.add_argument("--password-stdin", action="store_true",
                       help="the first line of stdin is the password; the envelope follows")
    grant.set_defaults(func=_grant)

    revoke = subparsers.add_parser("revoke", help="remove a recipient's slot from a sealed event")
    revoke.add_argument("--fingerprint", required=True, metavar="FP",
                        help="the fingerprint (vk1:...) of the recipient to remove")
    revoke.set_defaults(func=_revoke)


class UsageError(VigilError):
    exit_code = 2


def default_meta(fields: dict[str, Any]) -> dict[str, Any]:
    """Metadata for a manual seal: ``fields`` over defaults for whatever is missing."""
    defaults: dict[str, Any] = {
        "event_id": str(uuid.uuid4()), "device_id": "manual",
        "time": datetime.now(UTC).isoformat(), "category": "manual",
        "severity": 1, "rule": "manual", "source": "cli",
    }
    unknown = set(fields) - set(defaults)
    if unknown:
        raise UsageError(f"--meta has unknown fields: {', '.join(sorted(unknown))}")
    return {**defaults, **fields}


def _json_object(text: str, option: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(f"{option} is not valid JSON: {exc.msg}") from None
    if not isinstance(value, dict):
        raise UsageError(f"{option} must be a JSON object")
    return value


def emit(data: bytes) -> None:
    sys.stdout.buffer.write(data)
    sys.stdout.buffer.flush()


def _seal(args: argparse.Namespace) -> int:
    from core import envelope, keys

    meta = envelope.Metadata.from_dict(default_meta(_json_object(args.meta, "--meta")))
    header = _json_object(args.header, "--header")
    recipients = [keys.load_public_key(path) for path in args.to]
    emit(envelope.seal(meta, header, sys.stdin.buffer.read(), recipients))
    return 0


def _unlock(path: str, from_stdin: bool) -> Any:
    from core import keys

    key_file = keys.load_key_file(path)
    return key_file.unlock(PasswordSource(from_stdin).read(f"Password for {key_file.name}"))


def _read_envelope() -> bytes:
    data = sys.stdin.buffer.read()
    if not data:
        raise EnvelopeError("no sealed event on standard input")
    return data


def _open(args: argparse.Namespace) -> int:
    from core import envelope

    expect = _json_object(args.expect, "--expect") if args.expect else None
    key = _unlock(args.key, args.password_stdin)
    try:
        opened = envelope.open(_read_envelope(), key, expect=expect)
    except MetadataMismatch as exc:
        raise MetadataMismatch(exc.differences, "--expect") from None
    if args.header_out:
        write_header(opened, args.header_out, UsageError)
    emit(opened.body)
    return 0


def write_header(opened: Any, path: Any, error: type[VigilError]) -> None:
    """``--header-out``: an opened envelope's metadata and sealed header as JSON at ``path``
    (what a keyholder keeps beside the capture); ``error`` if it cannot be written."""
    document = {"meta": opened.meta.to_dict(), "header": opened.header}
    try:
        with open(path, "w", encoding="utf-8") as fh:
            json.dump(document, fh, indent=1, ensure_ascii=False)
    except OSError as exc:
        raise error(f"cannot write {path}: {exc.strerror}") from None


def _grant(args: argparse.Namespace) -> int:
    from core import envelope, keys

    to = keys.load_public_key(args.to)
    key = _unlock(args.key, args.password_stdin)
    emit(envelope.grant(_read_envelope(), key, to))
    return 0


def _revoke(args: argparse.Namespace) -> int:
    from core import envelope

    emit(envelope.revoke(_read_envelope(), args.fingerprint))
    return 0
