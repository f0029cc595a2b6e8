"""Routing and alerts (issue 18): the head's rules send each new event to the right people.

A rule names a category (or any), a minimum severity, a device group (or any), a year group (or
any) and one or more targets: an e-mail address, or a Microsoft Teams or Slack incoming webhook.
Like collector.alerts, what is sent holds no content: only that events need review and the link
to the triage page. The collector cannot read an event's header (where the login name is), so
the year a rule names is the event's cohort tag: the year group the agent looked up in its
school's cohort map (collector.cohorts, core.cohort) and put in the clear metadata, sealed as
associated data like the category. An event whose pupil is not on the roster (or whose school
switched tagging off) has no year and matches only rules for any year. The group a rule names
is the device's enrolment group (a Year 7 laptop trolley, the IT suite).

Each event is routed once: the job applies the rules to events it has not routed
(``Event.routed_at``) and writes one ``RouteDelivery`` per event and target (unique on the pair)
in the same transaction. Deliveries due for a target go in one message; when the target is down
the delivery waits (``route_retry_s``, doubling, at most an hour) and is tried again, until
``GIVE_UP`` after it was made, when it is marked failed and the failure audited. A webhook URL
is a secret (whoever holds it can post to the channel): errors and the audit log name the
target by its id and label, never by its URL, and the dashboard shows it only masked.

Out of the school's working hours a rule may send to whoever the school's rota has on call as
well as, or instead of, its targets (``RouteRule.out_of_hours``; collector.oncall). The on-call
DSL's e-mail and webhook are routing targets like any other, so what they get is the same
no-content alert, sent once and retried the same way.

The weekly digest (:func:`send_digests`) goes to each e-mail target marked for it (the DSLs):
counts for the last seven days only.
"""

from __future__ import annotations

import re
import smtplib
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import EmailMessage
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import func
from sqlmodel import Session, col, select

from collector import audit, schools
from collector.device_health import as_utc
from collector.errors import CollectorError
from collector.oncall import Rota
from collector.secrets_at_rest import SecretUnreadable, masked_part, secrets_key
from collector.settings import Settings
from collector.store.db import Database
from collector.store.models import (
    AuditEntry,
    Device,
    Event,
    Incident,
    OnCallShift,
    RouteDelivery,
    RouteRule,
    RouteTarget,
    WorkingHours,
    utcnow,
)

__all__ = [
    "DIGEST_ACTION",
    "KINDS",
    "RouteError",
    "check_target",
    "deliver",
    "mask",
    "plan",
    "route_all",
    "seal_clear_targets",
    "send_digests",
    "send_test",
    "stored_address",
    "target_address",
    "webhook_body",
]

KINDS = ("email", "webhook")
LOOKBACK = timedelta(days=1)  # events received longer ago are not routed (rules just added)
GIVE_UP = timedelta(days=1)  # a delivery still failing this long after it was made
MAX_BACKOFF = timedelta(hours=1)
DIGEST_ACTION = "alert.routing_digest"
DIGEST_EVERY = timedelta(days=6, hours=20)  # weekly, without drifting by the job's interval
PRUNE_AFTER = timedelta(days=30)  # sent and failed deliveries are kept this long
_EMAIL = re.compile(r"^[^@\s<>\",;]{1,64}@[A-Za-z0-9.-]{1,255}\.[A-Za-z]{2,63}$")
_LOOPBACK = {"127.0.0.1", "localhost", "::1", "[::1]"}


class RouteError(CollectorError):
    code = "route-failed"


def check_target(kind: str, address: str) -> str:
    """The address, cleaned; RouteError in one line if it cannot be a target of that kind. A
    webhook must be https (plain http only to this machine, for a local relay)."""
    address = address.strip()
    if kind == "email":
        if not _EMAIL.match(address):
            raise RouteError("That is not an e-mail address like dsl@school.example.")
        return address
    if kind != "webhook":
        raise RouteError(f"A target is one of: {', '.join(KINDS)}.")
    parts = urlsplit(address)
    host = (parts.hostname or "").lower()
    if not host or parts.scheme not in ("https", "http") or len(address) > 2000:
        raise RouteError("That is not a webhook URL: paste the https:// address Teams or Slack "
                         "gave for the incoming webhook.")
    if parts.scheme == "http" and host not in _LOOPBACK:
        raise RouteError("A webhook URL must start with https:// (it is a secret; plain http "
                         "would send it in the clear).")
    if parts.username or parts.password:
        raise RouteError("A webhook URL must not hold a user name or password.")
    return address


def mask(target: RouteTarget) -> str:
    """How a target is shown: an e-mail in full, a webhook as its host and last four characters
    (enough to tell two apart, not enough to post to the channel)."""
    if target.kind != "webhook":
        return target.address
    return masked_part(target.address) or _mask_url(target.address)


def _mask_url(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}/…{url[-4:]}"


def stored_address(settings: Settings, kind: str, address: str) -> str:
    """What RouteTarget.address holds: an e-mail as it is, a webhook URL sealed under the data
    directory's secrets.key (collector.secrets_at_rest), so a copy of the database alone
    cannot post to the channel."""
    if kind != "webhook":
        return address
    return secrets_key(settings.secrets_key).seal(address, _mask_url(address))


def target_address(settings: Settings, target: RouteTarget) -> str:
    """Where to send: an e-mail address, or the webhook URL opened; RouteError in one line if
    this collector's secrets.key does not open it."""
    if target.kind != "webhook":
        return target.address
    try:
        return secrets_key(settings.secrets_key).open(target.address)
    except SecretUnreadable as exc:
        raise RouteError(exc.detail) from None


def seal_clear_targets(db: Database, settings: Settings) -> int:
    """Seal the webhook URLs stored in the clear by a version before sealing; how many. Run at
    start-up by every instance: a row another instance sealed first is left as it is."""
    from sqlalchemy import update

    def job(session: Session) -> int:
        rows = session.exec(select(RouteTarget).where(RouteTarget.kind == "webhook")).all()
        done = 0
        for row in rows:
            if masked_part(row.address) is not None:
                continue
            sealed = stored_address(settings, "webhook", row.address)
            result = session.execute(update(RouteTarget)
                                     .where(col(RouteTarget.id) == row.id,
                                            col(RouteTarget.address) == row.address)
                                     .values(address=sealed))
            done += result.rowcount or 0
        return done

    return db.write(job)


def _matches(rule: RouteRule, event: Event, group: str, school_id: int | None) -> bool:
    return ((not rule.category or rule.category == event.category)
            and event.severity >= rule.min_severity
            and (not rule.group or rule.group == group)
            and (not rule.year or rule.year == (event.year or ""))
            and (rule.school_id is None or rule.school_id == school_id))


def _targets(rule: RouteRule, rota: Rota, school_id: int | None, received: datetime,
             live: set[int | None]) -> tuple[list[int], str]:
    """The targets a matching rule sends an event to, and "" (in hours, or a rule without
    escalation), "on_call" (the rota's on-call DSL is among them) or "nobody" (out of hours,
    nobody on call). Out of the school's hours a rule set to ``also`` adds whoever the rota has
    on call, one set to ``instead`` sends to them alone; with nobody on call it falls back to its
    own targets, since an alert is never dropped for a gap in the rota."""
    own = [int(t) for t in rule.targets or []]
    if rule.out_of_hours not in ("also", "instead") or not rota.out_of_hours(school_id, received):
        return own, ""
    # An on-call line whose targets were removed (on the Targets table) counts as nobody.
    rota_targets = [t for t in Rota.targets(rota.on_call(school_id, received)) if t in live]
    if not rota_targets:
        return own, "nobody"
    return (rota_targets if rule.out_of_hours == "instead" else own + rota_targets), "on_call"


def plan(db: Database, now: datetime | None = None) -> int:
    """Apply the rules to events not yet routed; how many deliveries it made. One transaction,
    so an event is routed once even when two instances run the job."""
    now = now or utcnow()

    def work(session: Session) -> int:
        events = list(session.exec(
            select(Event, Device.group, Device.school_id)
            .join(Device, col(Device.id) == Event.device_id)
            .where(col(Event.routed_at).is_(None), col(Event.received_at) > now - LOOKBACK)
            .order_by(col(Event.received_at)).limit(1000)
            .with_for_update(skip_locked=True, of=Event)).all())
        if not events:
            return 0
        rules = list(session.exec(select(RouteRule).where(col(RouteRule.removed_at).is_(None))
                                  .order_by(col(RouteRule.id))).all())
        live = {t.id for t in session.exec(select(RouteTarget).where(
            col(RouteTarget.removed_at).is_(None))).all()}
        rota = Rota.of(session.exec(select(WorkingHours)).all(),
                       session.exec(select(OnCallShift).where(
                           col(OnCallShift.removed_at).is_(None))).all())
        made = 0
        escalations: dict[str, int] = defaultdict(int)  # "on_call" / "nobody" -> events
        for event, group, school_id in events:
            chosen: dict[int, int] = {}  # target -> the first rule that chose it
            states: set[str] = set()
            for rule in rules:
                if not _matches(rule, event, group or "", school_id):
                    continue
                targets, state = _targets(rule, rota, school_id,
                                          as_utc(event.received_at) or now, live)
                states.add(state)
                for target in targets:
                    if target in live:
                        chosen.setdefault(int(target), rule.id or 0)
            for state in states - {""}:
                escalations[state] += 1
            for target, rule_id in chosen.items():
                session.add(RouteDelivery(event_id=event.id, target_id=target, rule_id=rule_id,
                                          next_attempt_at=now, created_at=now))
            event.routed_at = now
            session.add(event)
            made += len(chosen)
        if made:
            # on_call: events sent to the rota's on-call DSL; nobody: out-of-hours events whose
            # rule found nobody on call and went to its own targets (a gap in the rota to fill).
            audit.record(session, "system", "route.planned", f"{made} deliveries",
                         {"events": len(events), "deliveries": made, **escalations})
        return made

    return db.write(work)


# Microsoft Teams' Workflows webhooks ("Post to a channel when a webhook request is received"),
# which replaced the Office 365 connectors Microsoft retired, take Adaptive Cards only; a plain
# {"text": ...} is accepted and shows nothing. Their URLs are on Power Automate's hosts.
_WORKFLOWS_HOSTS = (".logic.azure.com", ".powerplatform.com", ".powerautomate.com")


def webhook_body(url: str, text: str, link: str) -> dict[str, Any]:
    """What to post to a webhook: an Adaptive Card message for a Teams Workflows URL, else
    ``{"text": ...}``, which Slack, Teams' older connectors, Mattermost and Google Chat take."""
    host = (urlsplit(url).hostname or "").lower()
    if not host.endswith(_WORKFLOWS_HOSTS):
        return {"text": text}
    card = {"$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
            "type": "AdaptiveCard", "version": "1.4",
            "body": [{"type": "TextBlock", "text": text, "wrap": True}],
            "actions": [{"type": "Action.OpenUrl", "title": "Open the triage page",
                         "url": link}]}
    return {"type": "message", "attachments": [
        {"contentType": "application/vnd.microsoft.card.adaptive", "contentUrl": None,
         "content": card}]}


def _post_webhook(settings: Settings, url: str, text: str) -> None:
    import httpx

    body = webhook_body(url, text, f"{settings.public_url}/triage")
    try:
        answer = httpx.post(url, json=body, timeout=settings.smtp.timeout_s,
                            follow_redirects=False)
    except httpx.HTTPError as exc:
        raise RouteError(f"the webhook did not answer: {type(exc).__name__}") from None
    if not 200 <= answer.status_code < 300:
        raise RouteError(f"the webhook answered HTTP {answer.status_code}")


def _mail(settings: Settings, to: str, subject: str, text: str) -> None:
    from collector.alerts import AlertError, send_mail

    if not settings.smtp.host:
        raise RouteError("no SMTP server is configured ([smtp] host in settings.toml)")
    msg = EmailMessage()
    msg["From"] = settings.smtp.sender
    msg["To"] = to
    msg["Subject"] = subject
    msg.set_content(text)
    try:
        send_mail(settings, msg)
    except AlertError as exc:
        raise RouteError(str(exc)) from None
    except (smtplib.SMTPException, OSError) as exc:  # pragma: no cover - send_mail wraps these
        raise RouteError(f"cannot send the e-mail: {type(exc).__name__}") from None


def _alert_text(settings: Settings, count: int) -> tuple[str, str]:
    noun = "an event needs" if count == 1 else f"{count} events need"
    subject = f"Vigil: {noun} review"
    return subject, (f"Vigil: {noun} review at {settings.public_url}/triage\n\n"
                     "Sign in to the dashboard to see it. This message deliberately holds no "
                     "details.\n")


def _send(settings: Settings, target: RouteTarget, count: int) -> None:
    subject, text = _alert_text(settings, count)
    if target.kind == "email":
        _mail(settings, target.address, subject, text)
    else:
        _post_webhook(settings, target_address(settings, target), text.split("\n", 1)[0])


def send_test(settings: Settings, target: RouteTarget) -> None:
    """A test message to ``target`` (from the routing page); RouteError if it cannot be sent."""
    text = (f"Vigil: this is a test. Alerts sent here say only that events need review at "
            f"{settings.public_url}/triage")
    if target.kind == "email":
        _mail(settings, target.address, "Vigil: test alert", text + "\n")
    else:
        _post_webhook(settings, target_address(settings, target), text)


def _backoff(settings: Settings, attempts: int) -> timedelta:
    base = timedelta(seconds=settings.route_retry_s)
    return min(base * (2 ** max(0, attempts - 1)), MAX_BACKOFF)


@dataclass
class Delivered:
    sent: int = 0
    waiting: int = 0
    failed: int = 0
    error: str = ""


def deliver(db: Database, settings: Settings, now: datetime | None = None) -> Delivered:
    """Send what is due, one message per target; failures wait and are retried."""
    now = now or utcnow()
    with db.session() as session:
        due = list(session.exec(select(RouteDelivery).where(
            RouteDelivery.status == "pending", col(RouteDelivery.next_attempt_at) <= now)
            .order_by(col(RouteDelivery.id)).limit(5000)).all())
        targets = {t.id: t for t in session.exec(select(RouteTarget).where(
            col(RouteTarget.id).in_({d.target_id for d in due}))).all()} if due else {}
    by_target: dict[int, list[RouteDelivery]] = defaultdict(list)
    for d in due:
        by_target[d.target_id].append(d)
    out = Delivered()
    for target_id, rows in by_target.items():
        target = targets.get(target_id)
        ids = [d.id for d in rows]
        error = ""
        if target is None or target.removed_at is not None:
            error = "the target was removed"
        else:
            try:
                _send(settings, target, len(rows))
            except RouteError as exc:
                error = str(exc)[:250]
        _record(db, settings, target_id, target, ids, error, now, out)
    return out


def _record(db: Database, settings: Settings, target_id: int, target: RouteTarget | None,
            ids: list[int | None], error: str, now: datetime, out: Delivered) -> None:
    label = target.label if target is not None else ""
    kind = target.kind if target is not None else ""
    gone = target is None or target.removed_at is not None

    def mark(session: Session) -> tuple[int, int, int]:
        rows = list(session.exec(select(RouteDelivery).where(col(RouteDelivery.id).in_(ids))))
        failed: list[str] = []
        for d in rows:
            if not error:
                d.status, d.sent_at, d.last_error = "sent", now, ""
            else:
                d.attempts += 1
                d.last_error = error
                created = as_utc(d.created_at) or now
                if gone or now - created >= GIVE_UP:
                    d.status = "failed"
                    failed.append(d.event_id)
                else:
                    d.next_attempt_at = now + _backoff(settings, d.attempts)
            session.add(d)
        details: dict[str, Any] = {"target_id": target_id, "label": label, "kind": kind,
                                   "events": [d.event_id for d in rows]}
        if not error:
            audit.record(session, "system", "route.sent", f"route_target:{target_id}", details)
        elif failed:
            audit.record(session, "system", "route.failed", f"route_target:{target_id}",
                         {**details, "events": failed, "error": error})
        session.execute(RouteDelivery.__table__.delete().where(  # type: ignore[attr-defined]
            col(RouteDelivery.status) != "pending",
            col(RouteDelivery.created_at) < now - PRUNE_AFTER))
        sent = 0 if error else len(rows)
        return sent, len(rows) - sent - len(failed), len(failed)

    sent, waiting, failed = db.write(mark)
    out.sent, out.waiting, out.failed = out.sent + sent, out.waiting + waiting, out.failed + failed
    if error:
        out.error = out.error or f"route target {target_id} ({label}): {error}"


def route_all(db: Database, settings: Settings) -> int:
    """The routing job: apply the rules, send what is due; RouteError (one line) when a target
    could not be reached, so the job is logged as failed; it is retried on a later run."""
    plan(db)
    done = deliver(db, settings)
    if done.error:
        raise RouteError(done.error)
    return done.sent


@dataclass(frozen=True)
class Digest:
    received: int
    serious: int  # severity 4 and 5
    awaiting: int  # not yet graded
    routed_here: int
    open_incidents: int

    def lines(self) -> list[str]:
        return [f"- {self.received} event(s) received in the last seven days",
                f"- {self.serious} of them at severity 4 or 5",
                f"- {self.routed_here} routed to you",
                f"- {self.awaiting} event(s) waiting for triage",
                f"- {self.open_incidents} open incident(s)"]


def _digest(session: Session, target: RouteTarget, now: datetime) -> Digest:
    since = now - timedelta(days=7)

    def count(query: Any) -> int:
        return int(session.exec(query).one())

    # A school's target (added by a school's account) is told its school's figures only.
    events = () if target.school_id is None else (schools.events_of(target.school_id),)
    incidents = () if target.school_id is None else (schools.incidents_of(target.school_id),)
    return Digest(
        received=count(select(func.count()).select_from(Event)
                       .where(col(Event.received_at) > since, *events)),
        serious=count(select(func.count()).select_from(Event)
                      .where(col(Event.received_at) > since, col(Event.severity) >= 4, *events)),
        awaiting=count(select(func.count()).select_from(Event)
                       .where(Event.status == "new", *events)),
        routed_here=count(select(func.count()).select_from(RouteDelivery).where(
            RouteDelivery.target_id == target.id, col(RouteDelivery.created_at) > since)),
        open_incidents=count(select(func.count()).select_from(Incident)
                             .where(Incident.status != "closed", *incidents)),
    )


def send_digests(db: Database, settings: Settings, now: datetime | None = None) -> int:
    """The weekly digest to each e-mail target marked for it; how many were sent. Counts only:
    no device, user, category or rule. At most one per target in DIGEST_EVERY, whatever the
    number of instances or runs; each is audited (``alert.routing_digest``)."""
    if not settings.smtp.host:
        return 0
    now = now or utcnow()
    sent = 0
    with db.session() as session:
        targets = list(session.exec(select(RouteTarget).where(
            RouteTarget.kind == "email", col(RouteTarget.digest).is_(True),
            col(RouteTarget.removed_at).is_(None))).all())
    for target in targets:
        with db.session() as session:
            last = session.exec(select(AuditEntry).where(
                AuditEntry.action == DIGEST_ACTION,
                AuditEntry.target == f"route_target:{target.id}")
                .order_by(col(AuditEntry.seq).desc()).limit(1)).first()
            at = as_utc(last.at) if last is not None else None
            if at is not None and now - at < DIGEST_EVERY:
                continue
            digest = _digest(session, target, now)
        text = ("Vigil's weekly safeguarding summary:\n\n" + "\n".join(digest.lines())
                + f"\n\nSee them in the dashboard: {settings.public_url}/triage\n"
                "This message deliberately names no pupil, device or word.\n")
        _mail(settings, target.address, "Vigil: your weekly safeguarding summary", text)
        db.write(lambda session, t=target, d=digest: audit.record(
            session, "system", DIGEST_ACTION, f"route_target:{t.id}",
            {"label": t.label, "received": d.received, "serious": d.serious,
             "awaiting": d.awaiting, "routed_here": d.routed_here,
             "open_incidents": d.open_incidents}))
        sent += 1
    return sent
