"""Talking to the collector: enrolment, uploads, repeats, heartbeat and policy refresh (httpx).

The collector's certificate is pinned, from the enrolment line, either by a CA certificate or by
the SHA-256 fingerprint of its certificate (a second fingerprint may be pinned for rotation).
Fingerprint pinning is checked inside the TLS handshake (``_PinnedSocket.do_handshake``), so the
device credential is never sent to a server that does not hold a pinned certificate.

What each answer means is in docs/internals.md: uploads are acknowledged by id and only then
removed from the spool; connection errors, timeouts, 409, 429 and 5xx are retried with backoff;
413 halves the batch; 401 ``re-enrol`` stops uploads until the device is enrolled again; any
other 4xx quarantines the event.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import platform
import socket
import ssl
from dataclasses import dataclass
from typing import Any

import httpx

from agent.config import Enrolment
from agent.errors import CollectorRejected, CollectorUnreachable, EnrolmentFailed, ReEnrolRequired
from agent.spool import Spool

__all__ = [
    "AGENT_VERSION",
    "RetryLater",
    "Uplink",
    "UploadReport",
    "enrol",
    "normalise_fingerprint",
    "tls_context",
]

log = logging.getLogger(__name__)

AGENT_VERSION = "0.1.0"


class RetryLater(CollectorUnreachable):
    """The collector is down, busy or asked us to slow down; ``retry_after`` if it said when."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        self.retry_after = retry_after
        super().__init__(message)


def normalise_fingerprint(value: str) -> str:
    """'sha256:AB:CD…', 'AB:CD…' or 'abcd…' -> 64 lower-case hex digits."""
    text = value.strip().lower()
    text = text.removeprefix("sha256:")
    text = text.replace(":", "")
    if len(text) != 64 or any(c not in "0123456789abcdef" for c in text):
        raise EnrolmentFailed(f"{value!r} is not a SHA-256 certificate fingerprint")
    return text


class _PinnedSocket(ssl.SSLSocket):
    """An SSL socket that refuses a peer whose certificate is not one of the pinned ones."""

    pins: tuple[str, ...] = ()

    def do_handshake(self, block: bool = False) -> None:
        super().do_handshake(block)
        der = self.getpeercert(binary_form=True) or b""
        seen = hashlib.sha256(der).hexdigest()
        if not any(hmac.compare_digest(seen, pin) for pin in self.pins):
            raise ssl.SSLCertVerificationError(
                f"collector certificate sha256:{seen} is not the pinned one")


def tls_context(ca_file: str | None, fingerprints: tuple[str, ...]) -> ssl.SSLContext:
    """A client TLS context pinned to ``ca_file`` or to the certificate ``fingerprints``."""
    if ca_file:
        try:
            return ssl.create_default_context(cafile=ca_file)
        except (OSError, ssl.SSLError) as exc:
            raise EnrolmentFailed(f"cannot use CA certificate {ca_file}: {exc}") from exc
    if not fingerprints:
        raise EnrolmentFailed("pin the collector: give --ca CERT or --ca-fingerprint SHA256")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    # The pin replaces chain and name checks: only a certificate with this exact hash passes.
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    socket_class = type("PinnedSocket", (_PinnedSocket,),
                        {"pins": tuple(normalise_fingerprint(f) for f in fingerprints)})
    ctx.sslsocket_class = socket_class
    return ctx


def _error_of(resp: httpx.Response) -> tuple[str, str]:
    try:
        body = resp.json()
        return str(body.get("code", "")), str(body.get("detail", ""))[:300]
    except ValueError:
        return "", resp.reason_phrase


def _retry_after(resp: httpx.Response) -> float | None:
    try:
        return float(resp.headers.get("Retry-After", ""))
    except ValueError:
        return None


@dataclass
class UploadReport:
    stored: int = 0
    duplicate: int = 0
    quarantined: int = 0


class Uplink:
    """An authenticated client for one enrolled device."""

    def __init__(self, enrolment: Enrolment, timeout: float = 20.0, batch: int = 20) -> None:
        self.enrolment = enrolment
        self.batch = max(1, batch)
        self._client = httpx.Client(
            base_url=enrolment.collector.rstrip("/"),
            verify=tls_context(enrolment.ca_file, enrolment.cert_fingerprints),
            timeout=timeout,
            headers={"Authorization": f"Bearer {enrolment.bearer}",
                     "User-Agent": f"vigil-agent/{AGENT_VERSION}"},
        )

    def close(self) -> None:
        self._client.close()

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            resp = self._client.request(method, path, **kwargs)
        except (httpx.TransportError, ssl.SSLError) as exc:
            raise RetryLater(f"collector unreachable: {type(exc).__name__}: {exc}") from exc
        if resp.status_code == 401:
            code, detail = _error_of(resp)
            raise ReEnrolRequired(
                f"the collector no longer accepts this device ({code or 401}: {detail}); "
                "enrol it again with `vigil agent enrol`")
        if resp.status_code in (409, 429) or resp.status_code >= 500:
            code, detail = _error_of(resp)
            raise RetryLater(f"collector answered {resp.status_code} {code}: {detail}",
                             _retry_after(resp))
        return resp

    # --- events ---------------------------------------------------------------------------
    def upload(self, spool: Spool) -> UploadReport:
        """Upload everything in the spool, batch by batch; acknowledged events leave the spool."""
        report = UploadReport()
        while True:
            items = spool.batch(self.batch)
            if not items:
                return report
            progressed = self._upload_batch(spool, items, report)
            if not progressed:
                return report

    def _upload_batch(self, spool: Spool, items: list[Any], report: UploadReport) -> bool:
        body = {"events": [{"id": i.event_id, "envelope": base64.b64encode(i.read()).decode()}
                           for i in items]}
        resp = self._request("POST", "/api/v1/events", json=body)
        if resp.status_code == 200:
            answer = resp.json()
            stored, duplicate = list(answer.get("stored", [])), list(answer.get("duplicate", []))
            acked = spool.ack(stored + duplicate)
            report.stored += len(stored)
            report.duplicate += len(duplicate)
            return acked > 0
        if resp.status_code == 413:
            if len(items) > 1:
                self.batch = max(1, len(items) // 2)
                return True
            code, detail = _error_of(resp)
            spool.quarantine(items[0].event_id, f"413 {code}: {detail}")
            report.quarantined += 1
            return True
        code, detail = _error_of(resp)
        if len(items) > 1:
            # Find the event the collector objects to: send them one at a time.
            for item in items:
                self._upload_batch(spool, [item], report)
            return True
        log.warning("collector refused event %s (%s %s); quarantined", items[0].event_id,
                    resp.status_code, code)
        spool.quarantine(items[0].event_id, f"{resp.status_code} {code}: {detail}")
        report.quarantined += 1
        return True

    def send_repeats(self, repeats: list[dict]) -> list[str]:
        if not repeats:
            return []
        resp = self._request("POST", "/api/v1/events/repeats", json={"repeats": repeats})
        if resp.status_code != 200:
            code, detail = _error_of(resp)
            raise CollectorRejected(resp.status_code, code, detail)
        return list(resp.json().get("updated", []))

    # --- heartbeat and policy -------------------------------------------------------------
    def heartbeat(self, status: dict[str, Any]) -> dict[str, Any]:
        resp = self._request("POST", "/api/v1/heartbeat",
                             json={"agent_version": AGENT_VERSION, **status})
        if resp.status_code != 200:
            code, detail = _error_of(resp)
            raise CollectorRejected(resp.status_code, code, detail)
        return resp.json()

    def fetch_cohorts(self, etag: str | None) -> tuple[bytes, str] | None:
        """The school's cohort map and its ETag (agent.cohorts), or None if ours (``etag``)
        is current or the collector is older than cohort maps (404)."""
        headers = {"If-None-Match": etag} if etag else {}
        resp = self._request("GET", "/api/v1/cohorts", headers=headers)
        if resp.status_code in (304, 404):
            return None
        if resp.status_code != 200:
            code, detail = _error_of(resp)
            raise CollectorRejected(resp.status_code, code, detail)
        return resp.content, resp.headers.get("ETag", "")

    def fetch_policy(self, etag: str | None) -> tuple[bytes, str] | None:
        """The signed policy and its ETag, or None if ours (``etag``) is current."""
        headers = {"If-None-Match": etag} if etag else {}
        resp = self._request("GET", "/api/v1/policy", headers=headers)
        if resp.status_code == 304:
            return None
        if resp.status_code != 200:
            code, detail = _error_of(resp)
            raise CollectorRejected(resp.status_code, code, detail)
        return resp.content, resp.headers.get("ETag", "")


def enrol(collector: str, token: str, keyset_pin: str, ca_file: str | None,
          fingerprints: tuple[str, ...], timeout: float = 20.0) -> Enrolment:
    """Exchange an enrolment token for a device credential; check the keyholder set pin."""
    if not collector.startswith("https://"):
        raise EnrolmentFailed("the collector URL must start with https://")
    ctx = tls_context(ca_file, fingerprints)
    body = {"token": token, "hostname": socket.gethostname(),
            "os": f"{platform.system()} {platform.release()}"[:64], "agent_version": AGENT_VERSION}
    try:
        with httpx.Client(base_url=collector.rstrip("/"), verify=ctx, timeout=timeout) as client:
            resp = client.post("/api/v1/enrol", json=body)
    except (httpx.TransportError, ssl.SSLError) as exc:
        raise CollectorUnreachable(f"cannot reach the collector at {collector}: {exc}") from exc
    if resp.status_code != 201:
        code, detail = _error_of(resp)
        raise EnrolmentFailed(f"the collector refused the enrolment ({resp.status_code} {code}): "
                              f"{detail}")
    answer = resp.json()
    offered = str(answer.get("keyset_fingerprint", ""))
    if not hmac.compare_digest(offered.encode(), keyset_pin.encode()):
        raise EnrolmentFailed(
            "the collector's keyholder set does not match the --trust fingerprint; "
            "check the enrolment line with the school's keyholders")
    return Enrolment(
        collector=collector.rstrip("/"), device_id=str(answer["device_id"]),
        secret=str(answer["secret"]), keyset_fingerprint=keyset_pin, ca_file=ca_file,
        cert_fingerprints=tuple(normalise_fingerprint(f) for f in fingerprints),
    )
