"""Fixtures shared by every test directory live in tests/fixtures/, one module per part."""

pytest_plugins = [
    "tests.fixtures.keys",
    "tests.fixtures.db",
    "tests.fixtures.blobs",
    "tests.fixtures.collector",
    "tests.fixtures.x11",
    "tests.fixtures.browser",
    "tests.fixtures.faults",
    "tests.fixtures.mail",
    "tests.fixtures.haproxy",
    "tests.fixtures.timing",
]
