"""When the agent may monitor: the policy's days and times, and the off-site rule.

The days, the daily window and its time zone are core.policy.Schedule (``active_at``). The
off-site rule is the policy's ``onsite_networks``: when it lists networks, the agent monitors
only while one of the machine's addresses lies in one of them, so a school laptop at home is
not monitored. An empty list means everywhere.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

__all__ = ["MonitoringWindow", "local_addresses", "on_site"]


def local_addresses() -> list[str]:
    """Every IP address on this machine's interfaces (psutil), loopback excluded."""
    import psutil

    found = []
    for addrs in psutil.net_if_addrs().values():
        for a in addrs:
            if getattr(a.family, "name", "") in ("AF_INET", "AF_INET6"):
                ip = a.address.split("%", 1)[0]
                try:
                    if not ipaddress.ip_address(ip).is_loopback:
                        found.append(ip)
                except ValueError:
                    continue
    return found


def on_site(addresses: Iterable[str], networks: Iterable[str]) -> bool:
    """True if no networks are given, or one of ``addresses`` lies in one of ``networks``."""
    nets = [ipaddress.ip_network(n, strict=False) for n in networks]
    if not nets:
        return True
    for raw in addresses:
        try:
            ip = ipaddress.ip_address(raw)
        except ValueError:
            continue
        if any(ip.version == n.version and ip in n for n in nets):
            return True
    return False


@dataclass(frozen=True)
class MonitoringWindow:
    """The policy's schedule and on-site networks, asked "may I monitor now?"."""

    schedule: Any = None  # core.policy.Schedule; None: always
    networks: tuple[str, ...] = ()
    addresses: Callable[[], Iterable[str]] = field(default=local_addresses, compare=False)

    @classmethod
    def from_policy(cls, policy: Any,
                    addresses: Callable[[], Iterable[str]] = local_addresses) -> MonitoringWindow:
        if policy is None:
            return cls(addresses=addresses)
        return cls(policy.schedule, tuple(policy.onsite_networks), addresses)

    def in_hours(self, now: datetime) -> bool:
        return self.schedule is None or self.schedule.active_at(now)

    def on_site(self) -> bool:
        return on_site(self.addresses(), self.networks) if self.networks else True

    def active(self, now: datetime) -> bool:
        """True when monitoring is allowed at ``now`` (an aware datetime)."""
        return self.in_hours(now) and self.on_site()
