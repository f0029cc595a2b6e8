"""Who can read: the keyholder set as the keyholders signed it, never as a table says.

The stored policies form a chain, checked exactly as an agent checks them (core.policy.verify):
the first against the keyset fingerprint pinned at enrolment (or, on the collector itself, its
own keyholders), each later one signed by a keyholder of the last one accepted, with a higher
serial. A stored policy that fails is skipped, as agents skip it. The keyholders of the last
policy accepted are **the readers**: incident records are sealed to them, routine publishing
keeps them unchanged, enrolment pins their fingerprint, ingest accepts envelopes sealed to them.

The keyholder table is only a list of *proposals*. A row that is active but not among the
readers is a proposed addition (a new keyholder's public key, uploaded and waiting, or a key
someone inserted without asking anyone); a reader whose row is retired or gone is a proposed
removal. Either takes effect only when a current reader signs a policy with the new set
(collector.policy_builder.approve_keyset), after being shown exactly this change.

Before the first policy there are no readers: the first keyholder to publish signs the genesis
set, and is shown it as a change like any other.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlmodel import Session, col, select

from collector.errors import CollectorError
from collector.store.models import Keyholder, PolicyRecord

__all__ = [
    "ChainWalker",
    "KeysetChange",
    "Member",
    "NoSignedPolicy",
    "SignedKeyset",
    "proposed_change",
    "readers",
    "signed_chain",
    "signed_readers",
    "unapproved_keys",
]


class NoSignedPolicy(CollectorError):
    """No stored policy verifies: nobody has signed who can read yet."""

    code = "no-signed-policy"


@dataclass(frozen=True)
class SignedKeyset:
    """The keyholders of one verified policy."""

    serial: int
    signed_at: datetime  # the policy's issued_at, inside what the keyholder signed
    signer: str  # fingerprint of the keyholder who signed it
    keyholders: tuple[Any, ...]  # core.keys.PublicKey

    @property
    def names(self) -> dict[str, str]:
        """fingerprint -> "Name (role)"."""
        return {k.fingerprint: f"{k.name} ({k.role})" for k in self.keyholders}

    @property
    def fingerprints(self) -> frozenset[str]:
        return frozenset(k.fingerprint for k in self.keyholders)

    @property
    def keyset_fingerprint(self) -> str:
        from core.keys import keyset_fingerprint

        return keyset_fingerprint(self.keyholders)


class ChainWalker:
    """Accept stored policies in serial order, as an agent would; keep the trust reached."""

    def __init__(self, pin: str | None = None) -> None:
        self.pin = pin
        self.trust: Any = None
        self.accepted: list[SignedKeyset] = []

    def accept(self, serial: int, signed: bytes) -> SignedKeyset | str:
        """The keyset of the policy stored as ``serial``, or why it is not trusted."""
        from core.errors import VigilError
        from core.policy import Policy, SignedPolicy, Trust, verify

        try:
            parsed = SignedPolicy.from_bytes(bytes(signed))
            trust = self.trust
            if trust is None:
                trust = Trust.pinned(self.pin or Policy.from_body(parsed.body).keyset_fingerprint)
            policy, self.trust = verify(parsed, trust)
        except VigilError as exc:
            return (f"stored policy {serial} does not verify against the keyholders before it "
                    f"({exc})")
        if self.accepted and self.accepted[-1].serial == policy.serial:
            return self.accepted[-1]
        keyset = SignedKeyset(policy.serial, policy.issued_at, parsed.signer, policy.keyholders)
        self.accepted.append(keyset)
        return keyset


def _records(session: Session) -> Iterator[tuple[int, bytes]]:
    for record in session.exec(select(PolicyRecord).order_by(col(PolicyRecord.serial))):
        yield record.serial, bytes(record.signed)


def signed_chain(session: Session, pin: str | None = None) -> tuple[list[SignedKeyset], list[str]]:
    """Every verified keyset, oldest first, and one line for each stored policy that failed."""
    walker = ChainWalker(pin)
    problems = [r for serial, signed in _records(session)
                if isinstance(r := walker.accept(serial, signed), str)]
    return walker.accepted, problems


def signed_readers(session: Session) -> SignedKeyset | None:
    """The keyset of the last verified policy, or None before the first one."""
    chain, _ = signed_chain(session)
    return chain[-1] if chain else None


def readers(session: Session) -> list[Any]:
    """The public keys everything is sealed to now: the last signed policy's keyholders."""
    current = signed_readers(session)
    if current is None:
        raise NoSignedPolicy("nobody has signed who can read yet: a keyholder publishes the "
                             "first policy (`vigil collector policy publish --keyholder NAME`)")
    return list(current.keyholders)


@dataclass(frozen=True)
class Member:
    name: str
    role: str
    fingerprint: str

    def __str__(self) -> str:
        return f"{self.name} ({self.role}) {self.fingerprint}"


@dataclass(frozen=True)
class KeysetChange:
    """What signing the keyholder table's active set would change about who can read."""

    serial: int  # the signed policy the change is against (0: none yet, the genesis)
    added: tuple[Member, ...] = ()
    removed: tuple[Member, ...] = ()
    kept: tuple[Member, ...] = ()
    proposed: tuple[Any, ...] = field(default=(), repr=False)  # PublicKey: the new set

    @property
    def empty(self) -> bool:
        return not self.added and not self.removed

    @property
    def digest(self) -> str:
        """Names exactly this change (against this serial): a signer confirms it, and signing
        refuses if the change moved since they were shown it."""
        lines = [f"serial {self.serial}"] + sorted(
            [f"+{m.fingerprint}" for m in self.added] + [f"-{m.fingerprint}" for m in self.removed])
        return "vkc1:" + hashlib.sha256("\n".join(lines).encode()).hexdigest()[:32]

    def describe(self) -> list[str]:
        return ([f"add    {m}" for m in self.added] + [f"remove {m}" for m in self.removed])


def _member(key: Any) -> Member:
    return Member(key.name, key.role, key.fingerprint)


def _active(session: Session) -> list[Keyholder]:
    return list(session.exec(select(Keyholder).where(col(Keyholder.retired_at).is_(None))
                             .order_by(col(Keyholder.id))).all())


def proposed_change(session: Session) -> KeysetChange:
    """The keyholder table's active set against the signed readers."""
    from core.keys import PublicKey

    current = signed_readers(session)
    signed = {k.fingerprint: k for k in (current.keyholders if current else ())}
    table = {row.fingerprint: PublicKey.from_bytes(row.public_key) for row in _active(session)}
    return KeysetChange(
        serial=current.serial if current else 0,
        added=tuple(_member(k) for f, k in table.items() if f not in signed),
        removed=tuple(_member(k) for f, k in signed.items() if f not in table),
        kept=tuple(_member(k) for f, k in signed.items() if f in table),
        proposed=tuple(table.values()),
    )


def unapproved_keys(session: Session, rows: Iterable[Keyholder] | None = None) -> list[Keyholder]:
    """Active keyholder rows no signed policy lists: waiting for approval, or inserted behind
    the keyholders' backs. None of them can read anything sealed since the last signature."""
    current = signed_readers(session)
    signed = current.fingerprints if current else frozenset()
    return [row for row in (rows if rows is not None else _active(session))
            if row.fingerprint not in signed]
