"""Canonical JSON and base64 helpers shared by keys, envelope and policy.

Signatures and associated data are computed over bytes, so every structure that is signed or
bound must serialise to exactly one byte string: sorted keys, no spaces, UTF-8.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from typing import Any

__all__ = ["b32_digest", "b64d", "b64e", "canonical_json", "parse_json_object"]


def canonical_json(value: Any) -> bytes:
    """The one byte string for ``value``: sorted keys, compact separators, UTF-8."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def b64e(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def b64d(text: object, what: str, error: type[Exception]) -> bytes:
    """Decode strict base64, raising ``error`` (a VigilError type) naming ``what`` on failure."""
    if not isinstance(text, str):
        raise error(f"{what} is not a base64 string")
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        raise error(f"{what} is not valid base64") from None


def b32_digest(prefix: str, data: bytes) -> str:
    """``prefix`` + lower-case unpadded base32 of SHA-256(data): easy to read aloud and compare."""
    digest = hashlib.sha256(data).digest()
    return prefix + base64.b32encode(digest).decode("ascii").rstrip("=").lower()


def parse_json_object(data: bytes, what: str, error: type[Exception]) -> dict[str, Any]:
    """Parse ``data`` as a JSON object or raise ``error`` with one line naming ``what``."""
    try:
        value = json.loads(bytes(data).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        raise error(f"{what} is not valid JSON") from None
    if not isinstance(value, dict):
        raise error(f"{what} is not a JSON object")
    return value
