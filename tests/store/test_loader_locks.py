"""Link transactions that share an institution do not wait for each other."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from sync.api import schemas
from sync.sandbox import Sandbox
from sync.store import loaders

NOW = datetime(2026, 11, 1, 12, tzinfo=UTC)


def _two_links_of_one_institution() -> tuple[schemas.Link, schemas.Link]:
    truth = Sandbox(seed=42).truth()
    by_institution: dict[str, list[schemas.Link]] = {}
    for obj in truth["links"]:
        link = schemas.parse_link(obj)
        assert link.institution is not None
        by_institution.setdefault(link.institution.id, []).append(link)
    pair = next(links for links in by_institution.values() if len(links) >= 2)
    return pair[0], pair[1]


def test_an_unchanged_institution_is_not_locked_by_a_link_transaction(
    sessions: sessionmaker[Session],
) -> None:
    """While one link's transaction is open, another link of the same bank still commits.

    ON CONFLICT DO UPDATE locks the conflicting row even when it changes nothing, so an
    institution upserted by every link transaction serialized all of them: each waited
    for the one before it, movements and all, to commit.
    """
    first, second = _two_links_of_one_institution()
    with sessions.begin() as session:  # both links and their institution exist
        loaders.upsert_links(session, [first, second], NOW, None)
    with sessions() as holder, holder.begin():
        loaders.upsert_links(holder, [first], NOW, None)  # left open: its locks held
        with sessions() as other, other.begin():
            other.execute(text("SET LOCAL lock_timeout = '2s'"))
            loaders.upsert_links(other, [second], NOW, None)  # LockNotAvailable before
    assert first.institution is not None
    renamed = replace(first.institution, name="Banco renombrado")
    with sessions.begin() as session:  # a changed institution is still written
        loaders.upsert_links(session, [replace(first, institution=renamed)], NOW, None)
    with sessions() as session:
        name = session.scalar(
            text("SELECT name FROM fintoc.institutions WHERE id = :i"), {"i": renamed.id}
        )
    assert name == "Banco renombrado"


def test_a_reused_upsert_statement_takes_each_calls_own_time_and_counts(
    sessions: sessionmaker[Session],
) -> None:
    """The upsert statement is compiled once and cached; each call still writes its own
    ``now`` and counts only the rows it inserted or changed."""
    first, second = _two_links_of_one_institution()
    later = NOW.replace(hour=13)
    with sessions.begin() as session:
        assert loaders.upsert_links(session, [first, second], NOW, None).changed == 2
    with sessions.begin() as session:
        unchanged = loaders.upsert_links(session, [first, second], later, None)
        moved = loaders.upsert_links(session, [replace(first, username="otro")], later, None)
    assert (unchanged.changed, moved.changed) == (0, 1)
    with sessions() as session:
        rows = session.execute(text("SELECT id, last_seen_at FROM fintoc.links")).all()
    # an unchanged row is not rewritten (its last_seen_at stays): see _upsert
    assert {row.id: row.last_seen_at for row in rows} == {first.id: later, second.id: NOW}
