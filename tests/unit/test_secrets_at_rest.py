"""Webhook URLs sealed at rest under the data directory's secrets.key (collector.secrets_at_rest)."""

from __future__ import annotations

import stat
import threading
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from collector.secrets_at_rest import PREFIX, SecretsKey, SecretUnreadable, masked_part

URL = "https://prod-12.westeurope.logic.azure.com/workflows/abc/triggers/manual/paths/invoke?sig=Zz9Q"


def test_a_sealed_url_opens_with_its_key_and_shows_only_its_mask(tmp_path: Path) -> None:
    key = SecretsKey.load(tmp_path / "secrets.key")
    stored = key.seal(URL, "https://prod-12.westeurope.logic.azure.com/…Zz9Q")
    assert stored.startswith(PREFIX) and URL not in stored and "sig=" not in stored
    assert masked_part(stored) == "https://prod-12.westeurope.logic.azure.com/…Zz9Q"
    assert key.open(stored) == URL
    assert key.seal(URL, "m") != key.seal(URL, "m")  # a fresh nonce each time


def test_a_clear_value_from_before_sealing_reads_as_it_is(tmp_path: Path) -> None:
    key = SecretsKey.load(tmp_path / "secrets.key")
    assert key.open(URL) == URL and masked_part(URL) is None


def test_another_key_or_a_changed_byte_is_refused_in_one_line(tmp_path: Path) -> None:
    stored = SecretsKey.load(tmp_path / "a.key").seal(URL, "m")
    other = SecretsKey.load(tmp_path / "b.key")
    with pytest.raises(SecretUnreadable, match="add the webhook again") as caught:
        other.open(stored)
    assert "\n" not in caught.value.detail
    key = SecretsKey.load(tmp_path / "a.key")
    head, blob = stored.rsplit("|", 1)
    flipped = blob[:10] + ("A" if blob[10] != "A" else "B") + blob[11:]
    with pytest.raises(SecretUnreadable):
        key.open(f"{head}|{flipped}")
    with pytest.raises(SecretUnreadable):
        key.open(PREFIX + "no blob at all")


def test_the_key_is_made_once_private_and_shared_by_racing_instances(tmp_path: Path) -> None:
    path = tmp_path / "data" / "secrets.key"
    keys: list[SecretsKey] = []
    start = threading.Barrier(8)

    def load() -> None:
        start.wait()
        keys.append(SecretsKey.load(path))

    threads = [threading.Thread(target=load) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and len(path.read_bytes()) == 32
    assert list(path.parent.iterdir()) == [path]  # no temporary file left behind
    stored = keys[0].seal(URL, "m")
    assert all(k.open(stored) == URL for k in keys)


def test_a_short_key_file_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "secrets.key").write_bytes(b"short")
    with pytest.raises(SecretUnreadable, match="32 bytes"):
        SecretsKey.load(tmp_path / "secrets.key")


def test_the_database_holds_no_webhook_url_and_old_clear_rows_are_sealed(tmp_path: Path) -> None:
    from collector.routing import mask, seal_clear_targets, stored_address, target_address
    from collector.settings import Settings
    from collector.store.db import Database, make_engine
    from collector.store.models import RouteTarget
    from collector.store.schema import upgrade

    settings = Settings(data_dir=tmp_path)
    db = Database(make_engine(settings.database_url))
    try:
        upgrade(db.engine)

        def add(session: Any) -> None:
            session.add(RouteTarget(kind="webhook", label="new", created_by="t",
                                    address=stored_address(settings, "webhook", URL)))
            session.add(RouteTarget(kind="webhook", label="old", created_by="t", address=URL))
            session.add(RouteTarget(kind="email", label="dsl", created_by="t",
                                    address="dsl@school.example"))

        db.write(add)
        assert seal_clear_targets(db, settings) == 1
        assert seal_clear_targets(db, settings) == 0  # idempotent
        with db.engine.connect() as raw:
            stored = dict(raw.execute(text("SELECT label, address FROM route_target")).all())
        assert URL not in stored["new"] and URL not in stored["old"]
        assert stored["dsl"] == "dsl@school.example"  # e-mail addresses are shown in full anyway
        with db.session() as session:
            from sqlmodel import select

            for target in session.exec(select(RouteTarget)):
                if target.kind == "webhook":
                    assert target_address(settings, target) == URL
                    assert mask(target) == "https://prod-12.westeurope.logic.azure.com/…Zz9Q"
    finally:
        db.close()
