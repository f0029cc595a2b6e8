"""``vigil keys create|passwd|show|keyset``: keyholder key files.

Passwords come from the terminal (asked twice when new) or, with ``--password-stdin``, one per
line from standard input, so scripts and tests can drive the command. They are never accepted as
arguments, which would leave them in the shell history and the process list.
"""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from typing import IO

from core.errors import VigilError

__all__ = ["PasswordInputError", "PasswordSource", "register"]


class PasswordInputError(VigilError):
    """No password could be read (no terminal, or standard input ended early)."""

    exit_code = 2


class PasswordSource:
    """Reads passwords from standard input (one per line) or from the terminal."""

    def __init__(self, from_stdin: bool, stdin: IO[bytes] | None = None) -> None:
        self.from_stdin = from_stdin
        self._stdin = stdin if stdin is not None else sys.stdin.buffer

    def read(self, prompt: str, *, confirm: bool = False) -> str:
        if self.from_stdin:
            return self._line()
        if not sys.stdin.isatty():
            raise PasswordInputError(
                "no terminal to ask for the password; use --password-stdin")
        password = getpass.getpass(f"{prompt}: ")
        if confirm and getpass.getpass(f"{prompt} (again): ") != password:
            raise PasswordInputError("the two passwords differ; nothing was changed")
        return password

    def _line(self) -> str:
        raw = self._stdin.readline(4096)
        if not raw.endswith(b"\n") and len(raw) == 4096:
            raise PasswordInputError("the password line on standard input is too long")
        if not raw:
            raise PasswordInputError("standard input ended before the password")
        try:
            return raw.decode("utf-8").rstrip("\r\n")
        except UnicodeDecodeError:
            raise PasswordInputError("the password on standard input is not UTF-8") from None


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = subparsers.add_parser("keys", help="create and manage keyholder keys")
    sub = parser.add_subparsers(dest="keys_command", metavar="ACTION", required=True)

    create = sub.add_parser("create", help="create a keyholder key file (PATH and PATH.pub)")
    create.add_argument("--name", required=True, help="the keyholder, e.g. 'Mrs A Head'")
    create.add_argument("--role", required=True, choices=("head", "technician", "recovery"))
    create.add_argument("--out", required=True, metavar="PATH", help="private key file to write")
    create.add_argument("--kem", choices=("hybrid", "x25519"), default="hybrid",
                        help="hybrid (ML-KEM-768+X25519, default) or plain X25519")
    create.add_argument("--kdf", choices=("argon2id", "scrypt"), default="argon2id",
                        help="password key derivation (default argon2id)")
    create.add_argument("--password-stdin", action="store_true",
                        help="read the password from the first line of standard input")
    create.set_defaults(func=_create)

    passwd = sub.add_parser("passwd", help="change a key file's password (keys stay the same)")
    passwd.add_argument("path", metavar="PATH")
    passwd.add_argument("--password-stdin", action="store_true",
                        help="read the old, then the new password, one per line, from stdin")
    passwd.set_defaults(func=_passwd)

    show = sub.add_parser("show", help="show a key's name, role, type and fingerprint")
    show.add_argument("path", metavar="PATH", help="a key file or a .pub file")
    show.add_argument("--json", action="store_true", help="print JSON")
    show.set_defaults(func=_show)

    keyset = sub.add_parser("keyset", help="print the keyset fingerprint that agents pin")
    keyset.add_argument("paths", metavar="PUB", nargs="+", help="the keyholders' .pub files")
    keyset.set_defaults(func=_keyset)


def _create(args: argparse.Namespace) -> int:
    from core import keys

    password = PasswordSource(args.password_stdin).read("New password", confirm=True)
    keys.check_password(password)
    kem = keys.Kem.HYBRID if args.kem == "hybrid" else keys.Kem.X25519
    key_file, _ = keys.create(args.name, args.role, password, kem=kem,
                              kdf=keys.Kdf.by_name(args.kdf))
    keys.save_key_files(args.out, key_file)
    print(key_file.fingerprint)
    return 0


def _passwd(args: argparse.Namespace) -> int:
    from core import keys

    key_file = keys.load_key_file(args.path)
    source = PasswordSource(args.password_stdin)
    old = source.read("Current password")
    new = source.read("New password", confirm=True)
    keys.save_key_files(args.path, key_file.change_password(old, new), overwrite=True)
    print(f"password changed for {key_file.name} ({key_file.fingerprint})")
    return 0


def _show(args: argparse.Namespace) -> int:
    from core import keys
    from core.errors import KeyFileError

    public = keys.load_public_key(args.path)
    info: dict[str, object] = {"name": public.name, "role": public.role,
                               "kem": public.kem.value, "fingerprint": public.fingerprint}
    try:
        key_file = keys.load_key_file(args.path)
        info["kdf"] = key_file.kdf.to_dict()
    except KeyFileError:
        pass  # a .pub file: no KDF to show
    if args.json:
        print(json.dumps(info, indent=1, ensure_ascii=False))
    else:
        for field, value in info.items():
            print(f"{field}: {value}")
    return 0


def _keyset(args: argparse.Namespace) -> int:
    from core import keys

    print(keys.keyset_fingerprint(keys.load_public_key(p) for p in args.paths))
    return 0
