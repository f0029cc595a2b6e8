"""Enrolment tokens must survive being pasted into a shell command line."""

from __future__ import annotations

import argparse

from collector.admin import ENROL_TOKEN_PREFIX, create_enrol_token


def test_tokens_never_look_like_an_option(database) -> None:
    # Bare token_urlsafe starts with "-" one time in 64; 200 tokens would almost surely hit it.
    parser = argparse.ArgumentParser()
    parser.add_argument("--token", required=True)
    for _ in range(200):
        token = create_enrol_token(database, uses=1).token
        assert token.startswith(ENROL_TOKEN_PREFIX)
        assert parser.parse_args(["--token", token]).token == token
