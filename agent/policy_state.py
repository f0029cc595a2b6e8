"""The policy the agent runs under: loaded from the config dir, refreshed by ETag, always verified.

A policy is used only after core.policy.verify accepts it under the Trust kept in the config dir
(pinned at enrolment, then the keys of the last accepted policy). A policy that fails to verify
is refused and logged; the agent keeps running under the one it had.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from agent.config import ConfigDir
from agent.errors import ConfigError
from core.errors import PolicyError, RuleFileError
from core.policy import Policy, Trust, verify

__all__ = ["PolicyState"]

log = logging.getLogger(__name__)


class PolicyState:
    def __init__(self, config: ConfigDir) -> None:
        self._config = config
        self._lock = threading.Lock()
        self.policy: Policy | None = None
        self.etag: str | None = None
        self.signed: bytes | None = None  # the verified signed policy, as received
        self.matcher: Any = None
        raw_trust = config.load_trust()
        if raw_trust is None:
            enrolment = config.load_enrolment()
            self.trust = Trust.pinned(enrolment.keyset_fingerprint)
        else:
            try:
                self.trust = Trust.from_json(raw_trust)
            except PolicyError as exc:
                raise ConfigError(f"the trust record in {config.path} is damaged: {exc}") from exc
        cached = config.load_policy()
        if cached is not None:
            signed, etag = cached
            try:
                self._accept(signed, etag, save=False)
            except PolicyError as exc:
                log.error("ignoring the cached policy: %s", exc)

    def _accept(self, signed: bytes, etag: str, save: bool) -> Policy:
        from core.matcher import Matcher
        from core.rules import load_policy_files

        policy, trust = verify(signed, self.trust)
        try:
            matcher = Matcher(load_policy_files(policy.wordlists))
        except RuleFileError as exc:  # signed, but unusable: keep the policy we have
            raise PolicyError(f"the policy's wordlists do not load: {exc}") from exc
        with self._lock:
            if save:
                self._config.save_policy(signed, etag)
                self._config.save_trust(trust.to_json())
            self.policy, self.trust, self.etag, self.matcher = policy, trust, etag, matcher
            self.signed = signed
        return policy

    def offer(self, signed: bytes, etag: str) -> Policy | None:
        """A policy fetched from the collector: accept it if it verifies, else keep the old one."""
        try:
            policy = self._accept(signed, etag, save=True)
        except PolicyError as exc:
            log.error("refused a policy from the collector: %s", exc)
            return None
        log.info("running under policy serial %d", policy.serial)
        return policy

    @property
    def serial(self) -> int:
        return self.policy.serial if self.policy is not None else 0

    @property
    def digest(self) -> str:
        """"sha256:..." of the verified signed policy in force (the collector's ETag for it),
        computed from the bytes that verified, not from any file; "" before the first."""
        from core.policy import SignedPolicy

        signed = self.signed
        return SignedPolicy.from_bytes(signed).digest if signed is not None else ""
