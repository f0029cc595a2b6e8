"""Build the policy agents run under from the database and the settings, and publish it signed.

The policy lists the active keyholders (recovery keys included, so every event is sealed to
them too), the default wordlists (the English category lists plus the language packs the
school's ``[policy] language_packs`` keeps on, all by default) plus the school's own files, and
the [policy] settings.
Publishing needs a keyholder's unlocked key: the collector alone cannot widen the circle.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlmodel import Session, col, select

from collector import audit
from collector.errors import CollectorError
from collector.keyholders import public_keys
from collector.policy_store import latest
from collector.settings import Settings
from collector.store.models import PolicyRecord, WordlistFile

__all__ = ["current_policy", "default_wordlists", "policy_wordlists", "publish"]


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


def current_policy(session: Session, settings: Settings, serial: int | None = None) -> Any:
    """The core.policy.Policy that publishing now would sign (serial: the next one)."""
    from core.errors import PolicyError
    from core.policy import CaptureSettings, Policy, Schedule

    keys = public_keys(session)
    if not keys:
        raise CollectorError("there are no keyholders: add one with "
                             "`vigil collector keyholder add` first")
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
        )
    except (TypeError, PolicyError) as exc:
        raise CollectorError(f"settings [policy]: {exc}") from None


def publish(session: Session, settings: Settings, private_key: Any, actor: str) -> PolicyRecord:
    """Sign the current policy with ``private_key`` and make it the one agents fetch.

    The signer must be an active keyholder, or agents would reject the policy. Adds to the
    caller's transaction; the caller commits.
    """
    from core.policy import sign

    policy = current_policy(session, settings)
    if private_key.fingerprint not in {k.fingerprint for k in policy.keyholders}:
        raise CollectorError("only an active keyholder can sign the policy")
    signed = sign(policy, private_key)
    record = PolicyRecord(serial=policy.serial, signed=signed.to_bytes(), etag=signed.digest,
                          signer=signed.signer)
    session.add(record)
    audit.record(session, actor, "policy.publish", target=f"serial {policy.serial}",
                 details={"serial": policy.serial, "signer": signed.signer,
                          "keyset": policy.keyset_fingerprint,
                          "wordlists": policy.wordlists_digest})
    session.flush()
    return record
