"""collector.trust_root: the readers are the last signed policy's keyholders, walked as agents
walk the chain; the keyholder table only proposes changes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from collector import trust_root
from collector.store.models import Keyholder, PolicyRecord

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def _store(db: Any, serial: int, holders: list[Any], signer: Any) -> None:
    from core import policy

    signed = policy.sign(policy.Policy(serial=serial, keyholders=tuple(h.public for h in holders),
                                       issued_at=T0 + timedelta(days=serial)), signer.key)
    db.write(lambda s: s.add(PolicyRecord(serial=serial, signed=signed.to_bytes(),
                                          etag=signed.digest, signer=signer.fingerprint)))


def _row(db: Any, holder: Any, retired: bool = False) -> None:
    db.write(lambda s: s.add(Keyholder(
        name=holder.name, role=holder.role, fingerprint=holder.fingerprint,
        public_key=holder.public.to_bytes(), retired_at=T0 if retired else None)))


def _read(db: Any, job: Any) -> Any:
    with db.session() as session:
        return job(session)


def test_before_any_policy_there_are_no_readers_and_the_table_is_the_genesis_proposal(
        database: Any, head_key: Any, technician_key: Any) -> None:
    assert _read(database, trust_root.signed_readers) is None
    with pytest.raises(trust_root.NoSignedPolicy, match="publishes the first policy"):
        _read(database, trust_root.readers)
    _row(database, head_key)
    _row(database, technician_key)
    change = _read(database, trust_root.proposed_change)
    assert change.serial == 0 and not change.removed and not change.kept
    assert {m.fingerprint for m in change.added} == {head_key.fingerprint,
                                                     technician_key.fingerprint}
    _store(database, 1, [head_key, technician_key], head_key)  # the genesis
    current = _read(database, trust_root.signed_readers)
    assert current.serial == 1 and current.signer == head_key.fingerprint
    assert current.fingerprints == {head_key.fingerprint, technician_key.fingerprint}
    assert current.names[head_key.fingerprint] == f"{head_key.name} (head)"
    assert _read(database, trust_root.proposed_change).empty
    assert _read(database, trust_root.unapproved_keys) == []


def test_a_forged_policy_row_is_skipped_as_agents_skip_it(
        database: Any, head_key: Any, technician_key: Any, stranger_key: Any) -> None:
    _store(database, 1, [head_key, technician_key], head_key)
    _store(database, 2, [head_key, technician_key, stranger_key], stranger_key)  # forged
    _store(database, 3, [head_key], technician_key)
    chain, problems = _read(database, trust_root.signed_chain)
    assert [k.serial for k in chain] == [1, 3]
    assert len(problems) == 1 and problems[0].startswith("stored policy 2 does not verify")
    assert _read(database, trust_root.readers)[0].fingerprint == head_key.fingerprint
    # Pinned to another set, the first policy itself is refused.
    chain, problems = _read(database, lambda s: trust_root.signed_chain(s, pin="vks1:other"))
    assert chain == [] and len(problems) == 3


def test_the_walker_accepts_incrementally_and_ignores_a_repeated_serial(
        database: Any, head_key: Any) -> None:
    from core import policy

    signed = policy.sign(policy.Policy(serial=1, keyholders=(head_key.public,)), head_key.key)
    walker = trust_root.ChainWalker()
    first = walker.accept(1, signed.to_bytes())
    assert isinstance(first, trust_root.SignedKeyset) and first.serial == 1
    assert walker.accept(1, signed.to_bytes()) is first  # the same policy again: not a new set
    assert len(walker.accepted) == 1
    assert isinstance(walker.accept(2, b"not a policy"), str)


def test_proposed_change_names_what_is_added_removed_and_kept(
        database: Any, head_key: Any, technician_key: Any, recovery_key: Any,
        stranger_key: Any) -> None:
    _store(database, 1, [head_key, technician_key, recovery_key], head_key)
    _row(database, head_key)
    _row(database, technician_key, retired=True)  # retiring proposes the removal
    _row(database, stranger_key)  # a new key waits
    # recovery_key has no row: also a proposed removal
    change = _read(database, trust_root.proposed_change)
    assert change.serial == 1
    assert [m.fingerprint for m in change.added] == [stranger_key.fingerprint]
    assert {m.fingerprint for m in change.removed} == {technician_key.fingerprint,
                                                       recovery_key.fingerprint}
    assert [m.fingerprint for m in change.kept] == [head_key.fingerprint]
    assert [k.fingerprint for k in change.proposed] == [head_key.fingerprint,
                                                        stranger_key.fingerprint]
    lines = change.describe()
    assert lines[0] == f"add    {stranger_key.name} (head) {stranger_key.fingerprint}"
    assert sum(line.startswith("remove ") for line in lines) == 2
    assert [r.name for r in _read(database, trust_root.unapproved_keys)] == [stranger_key.name]


def test_the_change_code_depends_on_the_change_and_on_the_serial(
        head_key: Any, stranger_key: Any) -> None:
    member = trust_root.Member(stranger_key.name, "head", stranger_key.fingerprint)
    other = trust_root.Member(head_key.name, "head", head_key.fingerprint)
    base = trust_root.KeysetChange(serial=3, added=(member,))
    assert base.digest.startswith("vkc1:")
    assert base.digest == trust_root.KeysetChange(serial=3, added=(member,), kept=(other,)).digest
    assert base.digest != trust_root.KeysetChange(serial=4, added=(member,)).digest
    assert base.digest != trust_root.KeysetChange(serial=3, removed=(member,)).digest
    assert base.digest != trust_root.KeysetChange(serial=3, added=(member, other)).digest
    assert trust_root.KeysetChange(serial=3).empty and not base.empty
