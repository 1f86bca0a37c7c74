"""Link tokens at rest: Fernet-encrypted, found by a SHA-256 fingerprint.

A link token is the only credential that reads a holder's bank data, and Fintoc
returns it exactly once (fintoc-api.md §9.1), so we keep it encrypted and never
print it. The fingerprint lets `links add` refuse duplicates without decrypting.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from cryptography.fernet import Fernet, InvalidToken
from sqlalchemy import delete, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from models import LinkToken
from sync.errors import ConfigError


def fingerprint(token: str) -> str:
    """A stable, non-reversible id for a (high-entropy) token."""
    return hashlib.sha256(token.encode()).hexdigest()


def key_fingerprint(key: str) -> str:
    """A short, non-secret name for an encryption key (first 8 hex of its SHA-256)."""
    return hashlib.sha256(key.strip().encode()).hexdigest()[:8]


def make_cipher(key: str) -> Fernet:
    """A Fernet cipher from the configured key, with a clear error if it is malformed."""
    try:
        return Fernet(key.encode())
    except (ValueError, TypeError):
        raise ConfigError(
            "FINTOC_SYNC_ENCRYPTION_KEY is not a valid Fernet key "
            "(32 url-safe base64-encoded bytes, as Fernet.generate_key() makes)"
        ) from None


@dataclass(frozen=True)
class StoredToken:
    """A decrypted token with what we know about it; repr never shows the token."""

    fingerprint: str
    link_id: str | None
    token: str

    def __repr__(self) -> str:
        return f"StoredToken(fingerprint={self.fingerprint[:12]}…, link_id={self.link_id!r})"


def add_tokens(session: Session, cipher: Fernet, tokens: Iterable[str], now: datetime) -> int:
    """Register tokens (encrypted); return how many were new. Never commits."""
    added = 0
    for raw in tokens:
        token = raw.strip()
        if not token:
            continue
        stmt = (
            insert(LinkToken)
            .values(
                fingerprint=fingerprint(token),
                token_encrypted=cipher.encrypt(token.encode()),
                added_at=now,
            )
            .on_conflict_do_nothing(index_elements=["fingerprint"])
            .returning(LinkToken.fingerprint)
        )
        added += len(session.execute(stmt).all())
    return added


def load_tokens(
    session: Session, cipher: Fernet, *, skipped: list[str] | None = None
) -> list[StoredToken]:
    """Every registered token this key decrypts.

    A row the key cannot decrypt is left out and its fingerprint appended to ``skipped``
    (the caller reports it as that token's failure), so one bad row never stops the
    others. If no row decrypts at all, the key is simply the wrong one: ConfigError.
    """
    rows = session.execute(
        select(LinkToken.fingerprint, LinkToken.link_id, LinkToken.token_encrypted).order_by(
            LinkToken.added_at, LinkToken.fingerprint
        )
    ).all()
    tokens: list[StoredToken] = []
    bad: list[str] = []
    for fp, link_id, blob in rows:
        token = _try_decrypt(cipher, blob)
        if token is None:
            bad.append(fp)
        else:
            tokens.append(StoredToken(fp, link_id, token))
    if rows and not tokens:
        raise wrong_key_error(len(rows))
    if skipped is not None:
        skipped.extend(bad)
    return tokens


def count_undecryptable(session: Session, cipher: Fernet) -> tuple[int, int]:
    """(stored tokens, how many of them this key cannot decrypt); nothing is kept."""
    blobs = session.scalars(select(LinkToken.token_encrypted)).all()
    return len(blobs), sum(1 for blob in blobs if _try_decrypt(cipher, blob) is None)


def wrong_key_error(stored: int, key: str | None = None) -> ConfigError:
    """The error for a key that decrypts none of the stored tokens."""
    named = f" (key {key_fingerprint(key)})" if key else ""
    return ConfigError(
        f"cannot decrypt the {stored} stored link token(s) with FINTOC_SYNC_ENCRYPTION_KEY"
        f"{named}: it is not the key they were stored with"
    )


def _try_decrypt(cipher: Fernet, blob: bytes) -> str | None:
    try:
        return cipher.decrypt(bytes(blob)).decode()
    except (InvalidToken, UnicodeDecodeError):
        return None


def _decrypt(cipher: Fernet, blob: bytes) -> str:
    token = _try_decrypt(cipher, blob)
    if token is None:
        raise ConfigError(
            "cannot decrypt a stored link token with FINTOC_SYNC_ENCRYPTION_KEY: "
            "it is not the key they were stored with"
        )
    return token


def remove_tokens(session: Session, refs: Iterable[str]) -> dict[str, int]:
    """Forget tokens named by link id, the token itself, or a fingerprint prefix
    (>= 12 hex, as failures show it); returns how many rows each ref removed. Never commits.

    Only the encrypted token goes: the link's synced data stays.
    """
    removed: dict[str, int] = {}
    for ref in refs:
        ref = ref.strip()
        match = (LinkToken.link_id == ref) | (LinkToken.fingerprint == fingerprint(ref))
        if len(ref) >= 12 and all(c in "0123456789abcdef" for c in ref):
            match = match | LinkToken.fingerprint.startswith(ref, autoescape=True)
        result = session.execute(delete(LinkToken).where(match).returning(LinkToken.fingerprint))
        removed[ref] = len(result.all())
    return removed


def bind_token(session: Session, fp: str, link_id: str, now: datetime) -> None:
    """Record which link a token opens (learned from GET /v1/links/{token})."""
    # A token for a link that already had another token: the old one is stale.
    session.execute(
        update(LinkToken)
        .where(LinkToken.link_id == link_id, LinkToken.fingerprint != fp)
        .values(link_id=None)
    )
    session.execute(
        update(LinkToken)
        .where(LinkToken.fingerprint == fp)
        .values(link_id=link_id, last_used_at=now, invalid_since=None)
    )


def mark_valid(session: Session, token: str) -> None:
    """Fintoc vouched for the token again (``link.created``): clear an invalid flag."""
    session.execute(
        update(LinkToken)
        .where(LinkToken.fingerprint == fingerprint(token.strip()))
        .values(invalid_since=None)
    )


def mark_invalid(session: Session, fp: str, now: datetime) -> None:
    """The API said the token is unknown or revoked; keep it, flag it."""
    session.execute(
        update(LinkToken)
        .where(LinkToken.fingerprint == fp, LinkToken.invalid_since.is_(None))
        .values(invalid_since=now)
    )


def rotate_key(session: Session, old: Fernet, new: Fernet) -> int:
    """Re-encrypt every token under a new key, in the caller's transaction."""
    rows = session.execute(select(LinkToken).with_for_update()).scalars().all()
    for row in rows:
        row.token_encrypted = new.encrypt(_decrypt(old, row.token_encrypted).encode())
    session.flush()
    return len(rows)


def token_for_link(session: Session, cipher: Fernet, link_id: str) -> str | None:
    """The decrypted token bound to one link (None if none is), without decrypting others."""
    blob = session.scalar(select(LinkToken.token_encrypted).where(LinkToken.link_id == link_id))
    return None if blob is None else _decrypt(cipher, blob)
