"""Build the policy agents run under from the database and the settings, and publish it signed.

The policy lists the keyholders of the last signed policy (collector.trust_root: recovery keys
included, so every event is sealed to them too), never the keyholder table: a routine publish
cannot change who can read. Changing the set is its own act, ``approve_keyset``, signed by a
current keyholder who was shown the change. The policy also carries the default wordlists (the English category lists plus the language packs the
school's ``[policy] language_packs`` keeps on, all by default) plus the school's own files, and
the [policy] settings.
Publishing needs a current keyholder's unlocked key: the collector alone cannot widen the circle.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlmodel import Session, col, select

from collector import audit
from collector.errors import CollectorError, Conflict
from collector.policy_store import latest
from collector.settings import Settings
from collector.store.models import PolicyRecord, WordlistFile
from collector.trust_root import proposed_change, signed_readers

__all__ = ["approve_keyset", "current_policy", "default_wordlists", "policy_wordlists", "publish"]


def default_wordlists(packs: Iterable[str] | None = None) -> dict[str, str]:
    """The installed default rule files by file name: the category lists, then the chosen
    language packs as ``lang-<code>.toml`` (``packs``: codes, ``["all"]``, or None for all;
    see core.rules.select_packs)."""
    from core.rules import default_files

    return default_files(packs)


def _school_wordlists(session: Session) -> dict[str, str]:
    rows = session.exec(select(WordlistFile).order_by(col(WordlistFile.name))).all()
    return {row.name: row.text for row in rows}


def policy_wordlists(session: Session, school: dict[str, str] | None = None,
                     packs: Iterable[str] | None = None) -> dict[str, str]:
    """The wordlist files a policy carries, named by layer for core.rules.load_policy_files:
    the defaults with the language packs ``packs`` selects (None: all; the settings' [policy]
    language_packs in practice), then the school's own files (``school`` overrides stored ones
    by name, for the dashboard's tester to try a file before saving it)."""
    files = {f"default/{name}": text for name, text in default_wordlists(packs).items()}
    own = _school_wordlists(session)
    own.update(school or {})
    files.update({f"school/{name}": text for name, text in own.items()})
    return files


def current_policy(session: Session, settings: Settings, serial: int | None = None,
                   keyholders: tuple[Any, ...] | None = None) -> Any:
    """The core.policy.Policy that publishing now would sign (serial: the next one), for the
    signed readers (before the first policy: the keyholder table, the genesis set) unless
    ``keyholders`` says otherwise."""
    from core.errors import PolicyError
    from core.policy import CaptureSettings, Policy, Schedule, ScreenSettings

    if keyholders is None:
        current = signed_readers(session)
        keyholders = current.keyholders if current else proposed_change(session).proposed
    keys = tuple(keyholders)
    if not keys:
        raise CollectorError("there are no keyholders: a keyholder makes their key on their own "
                             "machine (`vigil keys create`) and it is added with "
                             "`vigil collector keyholder add --pub FILE` first")
    if serial is None:
        last = latest(session)
        serial = (last.serial if last else 0) + 1
    p = settings.policy
    try:
        wordlists = policy_wordlists(session, packs=p.language_packs)
    except (TypeError, ValueError) as exc:
        raise CollectorError(f"settings [policy] language_packs: {exc}") from None
    try:
        return Policy(
            serial=serial, keyholders=tuple(keys), wordlists=wordlists,
            capture=CaptureSettings(**p.capture), notice=p.notice,
            schedule=Schedule(**p.schedule), onsite_networks=tuple(p.onsite_networks),
            flood_window_s=p.flood_window_s, title_cooldown_s=p.title_cooldown_s,
            retention_days=min(settings.retention_days, 3650),
            screen=ScreenSettings(**p.screen),
        )
    except (TypeError, PolicyError) as exc:
        raise CollectorError(f"settings [policy]: {exc}") from None


def _check_signer(session: Session, private_key: Any, policy: Any) -> None:
    """Agents accept a policy only from a keyholder of the last one they accepted (the genesis:
    from one of its own keyholders)."""
    current = signed_readers(session)
    allowed = current.fingerprints if current else {k.fingerprint for k in policy.keyholders}
    if private_key.fingerprint not in allowed:
        raise CollectorError("only a keyholder of the signed policy can sign the next one: "
                             "a key waiting for approval cannot approve itself")


def publish(session: Session, settings: Settings, private_key: Any, actor: str) -> PolicyRecord:
    """Sign the current policy with ``private_key`` and make it the one agents fetch.

    The keyholders stay those of the last signed policy (the first publish signs the genesis
    set). The signer must be one of them, or agents would reject the policy. Adds to the
    caller's transaction; the caller commits.
    """
    policy = current_policy(session, settings)
    _check_signer(session, private_key, policy)
    return _store(session, policy, private_key, actor, "policy.publish")


def approve_keyset(session: Session, settings: Settings, private_key: Any, actor: str,
                   change_digest: str) -> PolicyRecord:
    """Sign a policy whose keyholders are the keyholder table's active set: the change shown to
    the signer (``KeysetChange.digest``) takes effect. Refuses when there is nothing to change
    or the change is not the one the signer saw (someone changed the table meanwhile)."""
    import hmac

    change = proposed_change(session)
    if change.empty:
        raise Conflict("nothing to approve: the keyholder list already matches the signed policy")
    if not hmac.compare_digest(change.digest.encode(), change_digest.encode()):
        raise Conflict("the keyholder changes are not the ones you were shown (someone changed "
                       "them since): look at them again before signing")
    policy = current_policy(session, settings, keyholders=change.proposed)
    # A retired keyholder cannot sign (collector.publishing refuses their key): another reader
    # signs their removal, and they go on reading until then.
    _check_signer(session, private_key, policy)
    return _store(session, policy, private_key, actor, "keyholder.approve", details={
        "added": [str(m) for m in change.added], "removed": [str(m) for m in change.removed],
        "change": change.digest})


def _store(session: Session, policy: Any, private_key: Any, actor: str, action: str,
           details: dict[str, Any] | None = None) -> PolicyRecord:
    from core.policy import sign

    signed = sign(policy, private_key)
    record = PolicyRecord(serial=policy.serial, signed=signed.to_bytes(), etag=signed.digest,
                          signer=signed.signer)
    session.add(record)
    audit.record(session, actor, action, target=f"serial {policy.serial}",
                 details={"serial": policy.serial, "signer": signed.signer,
                          "keyset": policy.keyset_fingerprint,
                          "wordlists": policy.wordlists_digest, **(details or {})})
    session.flush()
    return record
