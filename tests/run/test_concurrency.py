"""Two syncs at once (no advisory lock between them) never duplicate history."""

from __future__ import annotations

import threading
from collections.abc import Callable

from sqlalchemy import Engine, text

from sync.run.movements import MovementSync
from sync.run.pipeline import Pipeline
from sync.sandbox import Sandbox


def _dupes(engine: Engine, sql: str) -> list[object]:
    with engine.connect() as conn:
        return list(conn.execute(text(sql)).all())


def test_two_pipelines_racing_write_each_change_once(
    make_pipeline: Callable[..., Pipeline], sandbox: Sandbox, engine: Engine
) -> None:
    """Two runs started together record one first observation per link, account and movement."""
    first = make_pipeline(sandbox)
    second = make_pipeline(sandbox, register=False)
    for pipeline in (first, second):
        pipeline.account_hook = MovementSync(
            pipeline.client,  # type: ignore[arg-type]
            clock=lambda: sandbox.world.now,
        )
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def run(pipeline: Pipeline) -> None:
        barrier.wait()
        try:
            pipeline.run()
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(p,)) for p in (first, second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == []
    assert (
        _dupes(
            engine,
            "SELECT link_id FROM fintoc.link_status_transitions "
            "GROUP BY link_id HAVING count(*) > 1",
        )
        == []
    )
    assert (
        _dupes(
            engine,
            "SELECT account_id FROM fintoc.balance_snapshots "
            "GROUP BY account_id HAVING count(*) > 1",
        )
        == []
    )
    assert (
        _dupes(
            engine,
            "SELECT movement_id FROM fintoc.movement_changes "
            "GROUP BY movement_id HAVING count(*) > 0",
        )
        == []
    )
    with engine.connect() as conn:
        accounts = conn.scalar(text("SELECT count(*) FROM fintoc.accounts"))
        snapshots = conn.scalar(text("SELECT count(*) FROM fintoc.balance_snapshots"))
        movements = conn.scalar(text("SELECT count(*) FROM fintoc.movements"))
    assert accounts == snapshots and accounts
    assert movements
