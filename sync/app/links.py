"""`links add` checks and `links remove`: what a token may look like, which link it opens.

Fintoc documents the token format (`link_<id>_token_<secret>`) but asks clients not to
parse it (fintoc-api.md §3), so the shape check refuses only what can never be a link
token — an API key, whitespace, an absurd length — and merely warns about an unfamiliar
shape. `--verify` asks the API itself (docs/decisions/0009-cli-experience.md).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TextIO

from sqlalchemy import Engine

from sync.app.wiring import Wiring
from sync.errors import AuthenticationError, ConfigError, FintocSyncError
from sync.redact import scrub
from sync.store import vault
from sync.store.db import make_sessionmaker

log = logging.getLogger(__name__)

MIN_LENGTH, MAX_LENGTH = 8, 512
KNOWN_SHAPE = re.compile(r"^link_[A-Za-z0-9]+_token_[A-Za-z0-9_\-]+$")
_PRINTABLE = re.compile(r"^[\x21-\x7e]+$")  # visible ASCII: no spaces, no control bytes


@dataclass(frozen=True)
class ShapeCheck:
    """Tokens refused (with the reason, by position) and tokens merely unfamiliar."""

    refused: list[str]
    unfamiliar: list[int]


def check_shapes(tokens: Sequence[str]) -> ShapeCheck:
    """Classify each token; messages name its position, never its value."""
    refused: list[str] = []
    unfamiliar: list[int] = []
    for n, token in enumerate(tokens, 1):
        reason = _refusal(token)
        if reason:
            refused.append(f"token #{n}: {reason}")
        elif not KNOWN_SHAPE.match(token):
            unfamiliar.append(n)
    return ShapeCheck(refused, unfamiliar)


def _refusal(token: str) -> str | None:
    if token.startswith(("sk_", "pk_")):
        return "a Fintoc API key, not a link token (the secret key goes in FINTOC_SECRET_KEY)"
    if not _PRINTABLE.match(token):
        return "contains whitespace, control or non-ASCII characters"
    if not MIN_LENGTH <= len(token) <= MAX_LENGTH:
        return f"{len(token)} characters long; a link token has {MIN_LENGTH} to {MAX_LENGTH}"
    return None


def require_good_shapes(tokens: Sequence[str]) -> None:
    """ConfigError listing every refused token; a warning for unfamiliar shapes."""
    check = check_shapes(tokens)
    if check.refused:
        raise ConfigError("nothing registered; " + "; ".join(check.refused))
    if check.unfamiliar:
        which = ", ".join(f"#{n}" for n in check.unfamiliar)
        log.warning(
            "token(s) %s do not look like link_…_token_…; registered anyway (Fintoc may change "
            "the format): `links add --verify` asks the API which link each opens",
            which,
        )


def require_matching_key(engine: Engine, key: str) -> None:
    """Refuse a vault key that decrypts none of the stored tokens (it would poison the vault)."""
    cipher = vault.make_cipher(key)
    with make_sessionmaker(engine)() as session:
        stored, bad = vault.count_undecryptable(session, cipher)
    if stored and bad == stored:
        raise vault.wrong_key_error(stored, key)
    if bad:
        log.warning(
            "%d of the %d stored token(s) cannot be decrypted with key %s; `fintoc-sync status` "
            "names them, `links remove` forgets them",
            bad,
            stored,
            vault.key_fingerprint(key),
        )


def verify(wiring: Wiring, tokens: Sequence[str], out: TextIO) -> list[str]:
    """GET /v1/links/{token} for each; print which link it opens; return those that work."""
    good: list[str] = []
    with wiring.client() as client:
        for n, token in enumerate(tokens, 1):
            ref = vault.fingerprint(token)[:12]
            try:
                link = client.get_link(token)
            except AuthenticationError:
                raise
            except FintocSyncError as exc:
                print(f"  token #{n} ({ref}…): refused by the API: {scrub(str(exc))}", file=out)
                continue
            institution = link.get("institution")
            bank = institution.get("name") if isinstance(institution, dict) else None
            print(
                f"  token #{n} ({ref}…): link {link.get('id')} — {bank or '?'}, "
                f"{link.get('holder_type') or '?'} {link.get('holder_id') or '?'}, "
                f"status {link.get('status') or '?'}",
                file=out,
            )
            good.append(token)
    return good


def links_remove(engine: Engine, refs: Sequence[str], out: TextIO) -> int:
    """Forget tokens by link id, token or fingerprint prefix; exit 1 if one matched nothing."""
    with make_sessionmaker(engine).begin() as session:
        removed = vault.remove_tokens(session, refs)
    missing = 0
    for n, (ref, count) in enumerate(removed.items(), 1):
        safe = "_token_" not in ref and (ref.startswith("link_") or _is_hex(ref))
        shown = ref if safe else f"#{n}"  # never echo something that may be a token
        if count:
            print(f"forgot {count} token(s) for {shown}", file=out)
        else:
            missing += 1
            print(f"no registered token matches {shown}", file=out)
    if missing < len(removed):
        print("their links' synced data stays; `sync` no longer fetches their accounts", file=out)
    return 1 if missing else 0


def _is_hex(ref: str) -> bool:
    return bool(ref) and all(c in "0123456789abcdef" for c in ref)
