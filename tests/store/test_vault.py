"""Link tokens at rest: encrypted, deduplicated, rotatable, never destroyed by a wrong key."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from sync.errors import ConfigError
from sync.store import vault

NOW = datetime(2026, 11, 1, tzinfo=UTC)
TOKENS = ["link_abc_token_secret1", "6n12zLmai3lLE9Dq_token_legacy", "opaque-new-format-token"]


def test_tokens_are_stored_encrypted_and_deduplicated(
    sessions: sessionmaker[Session], fernet_key: str
) -> None:
    """Adding tokens twice stores each once, as ciphertext that decrypts back."""
    cipher = vault.make_cipher(fernet_key)
    with sessions.begin() as s:
        assert vault.add_tokens(s, cipher, TOKENS, NOW) == 3
    with sessions.begin() as s:
        assert vault.add_tokens(s, cipher, [TOKENS[0], " " + TOKENS[1] + "\n"], NOW) == 0
    with sessions() as s:
        raw = s.execute(text("SELECT token_encrypted FROM fintoc.link_tokens")).scalars().all()
        assert sorted(t.token for t in vault.load_tokens(s, cipher)) == sorted(TOKENS)
    assert all(token.encode() not in bytes(blob) for blob in raw for token in TOKENS)


def test_wrong_key_is_a_clear_error_and_keeps_the_tokens(
    sessions: sessionmaker[Session], fernet_key: str
) -> None:
    """Reading with another key raises ConfigError; the stored ciphertext is untouched."""
    right = vault.make_cipher(fernet_key)
    wrong = Fernet(Fernet.generate_key())
    with sessions.begin() as s:
        vault.add_tokens(s, right, TOKENS, NOW)
    with sessions() as s, pytest.raises(ConfigError, match="not the key they were stored with"):
        vault.load_tokens(s, wrong)
    with sessions() as s, pytest.raises(ConfigError), s.begin():
        vault.rotate_key(s, wrong, Fernet(Fernet.generate_key()))
    with sessions() as s:
        assert sorted(t.token for t in vault.load_tokens(s, right)) == sorted(TOKENS)


def test_rotate_key_reencrypts_every_token(
    sessions: sessionmaker[Session], fernet_key: str
) -> None:
    """After rotation the new key reads every token and the old key reads none."""
    old = vault.make_cipher(fernet_key)
    new_key = Fernet.generate_key().decode()
    new = vault.make_cipher(new_key)
    with sessions.begin() as s:
        vault.add_tokens(s, old, TOKENS, NOW)
    with sessions.begin() as s:
        assert vault.rotate_key(s, old, new) == 3
    with sessions() as s:
        assert sorted(t.token for t in vault.load_tokens(s, new)) == sorted(TOKENS)
        with pytest.raises(ConfigError):
            vault.load_tokens(s, old)


def test_malformed_key_is_explained() -> None:
    """A key that is not a Fernet key says what a valid one looks like."""
    with pytest.raises(ConfigError, match="Fernet"):
        vault.make_cipher("not-a-key")


def test_stored_token_repr_hides_the_token() -> None:
    """repr() of a decrypted token (as in a traceback) never shows the secret."""
    stored = vault.StoredToken(vault.fingerprint("sekrit-value"), None, "sekrit-value")
    assert "sekrit" not in repr(stored)
