"""Scrubbing tokens and keys from text and from log records."""

from __future__ import annotations

import logging

import pytest

from sync.redact import RedactingFilter, install_redaction, scrub

TOKEN = "link_nMNejK7BT8oGbvO4_token_s3cr3tVALUE-x_y"
KEY = "sk_live_9c8d8CeyBTx1VcJzuDgpm4H-bywJCeSx"


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        (f"GET https://api.fintoc.com/v1/accounts?link_token={TOKEN}&page=2", TOKEN),
        ("GET /v1/accounts?link_token=opaque-NEW-format-123&page=2", "opaque-NEW-format-123"),
        ("GET /v1/accounts?LINK_TOKEN=whatever42", "whatever42"),
        ("GET /v1/accounts?link_token%3Denc0ded42", "enc0ded42"),
        ('{"link_token": "jsonvalue42"}', "jsonvalue42"),
        (f"token is {TOKEN} ok", TOKEN),
        ("GET /v1/links/6n12zLmai3lLE9Dq?x=1", "6n12zLmai3lLE9Dq"),
        (f"key={KEY}", KEY),
        ("Authorization: sk_test_abcDEF123", "sk_test_abcDEF123"),
    ],
)
def test_scrub_removes_tokens_and_keys(text: str, secret: str) -> None:
    """Tokens (any format, in query, path or bare) and secret keys become ***."""
    out = scrub(text)
    assert secret not in out and "***" in out


def test_scrub_keeps_the_rest_readable() -> None:
    """Other query params and the path survive scrubbing."""
    out = scrub(f"GET /v1/accounts/acc_1/movements?link_token={TOKEN}&since=2024-01-01&page=3")
    assert out == "GET /v1/accounts/acc_1/movements?link_token=***&since=2024-01-01&page=3"


def test_scrub_leaves_exchange_route_alone() -> None:
    """/v1/links/exchange is a route, not a token."""
    assert scrub("GET /v1/links/exchange") == "GET /v1/links/exchange"


def test_scrub_known_secrets_verbatim() -> None:
    """A registered secret with no recognizable shape is removed anywhere."""
    assert scrub("value plainsecret99 here", ["plainsecret99"]) == "value *** here"


def make_logger(flt: RedactingFilter) -> tuple[logging.Logger, list[str]]:
    """A private logger whose handler collects formatted output."""
    lines: list[str] = []

    class ListHandler(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(self.format(record))

    logger = logging.getLogger(f"test.redact.{id(flt)}")
    logger.propagate = False
    handler = ListHandler()
    handler.addFilter(flt)
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    return logger, lines


def test_filter_scrubs_message_args_and_exception() -> None:
    """msg, %-args of any type and the traceback text are all scrubbed."""
    logger, lines = make_logger(RedactingFilter())
    try:
        raise ValueError(f"boom /v1/links/{TOKEN}")
    except ValueError:
        logger.exception("fetching %s with %r", f"?link_token={TOKEN}", {"k": KEY})
    text = "\n".join(lines)
    assert TOKEN not in text and KEY not in text
    assert "fetching" in text and "ValueError" in text


def test_filter_secrets_are_updatable() -> None:
    """Secrets added after construction are scrubbed from later records."""
    flt = RedactingFilter(secrets=["first-secret"])
    logger, lines = make_logger(flt)
    flt.add_secrets(["second-secret"])
    logger.info("a first-secret b second-secret c")
    assert lines == ["a *** b *** c"]


def test_install_redaction_covers_propagated_records() -> None:
    """Installed on a parent's handlers, child logger records are scrubbed too."""
    parent = logging.getLogger("test.redact.parent")
    parent.propagate = False
    lines: list[str] = []

    class ListHandler(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(record.getMessage())

    parent.addHandler(ListHandler())
    install_redaction(parent, secrets=["zzz-known"])
    logging.getLogger("test.redact.parent.child").warning("t=%s k=zzz-known", TOKEN)
    assert lines == ["t=*** k=***"]
