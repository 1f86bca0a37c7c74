"""The peer in ``make bench-compare``: a dlt pipeline over the same Fintoc-like API.

Not part of fintoc-sync and never imported by it: ``scripts/bench_compare.py`` runs it
with the Python of its own virtualenv (``.venv-bench-dlt``, ``dlt[postgres]==1.31.0``).
It is written the way dlt's documentation shows a REST source — resources and
transformers over ``RESTClient`` with the ``HeaderLinkPaginator`` (Fintoc paginates with
RFC 8288 ``Link`` headers) and the secret key as a raw ``Authorization`` header:

* ``links``: merged with the ``scd2`` strategy (dlt's own history of a changing row);
* ``accounts``: merged on ``id`` with the ``upsert`` strategy;
* ``balances``: one row per observed balance, ``insert-only`` on (account, balance), so
  an unchanged balance is not written again;
* ``movements``: a transformer of ``accounts``, merged on ``id`` with ``upsert``; a
  per-account cursor on ``post_date`` kept in dlt's resource state, re-read with the same
  7-day look-back as fintoc-sync.

    .venv-bench-dlt/bin/python scripts/bench_dlt_pipeline.py --api-url URL \\
        --tokens-file FILE --since 2024-11-02 --database-url URL --pipelines-dir DIR

The secret key comes from ``FINTOC_SECRET_KEY``. Link tokens are kept in memory only
(never yielded as data, so never stored).
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import dlt
from dlt.sources.helpers.rest_client import RESTClient
from dlt.sources.helpers.rest_client.auth import APIKeyAuth
from dlt.sources.helpers.rest_client.paginators import HeaderLinkPaginator

LOOKBACK_DAYS = 7
PER_PAGE = 300


@dlt.source(name="fintoc")
def fintoc_source(api_url: str, secret_key: str, link_tokens: list[str], since: str) -> Any:
    """The Fintoc organization: links, accounts, balances, movements."""
    client = RESTClient(
        base_url=api_url,
        auth=APIKeyAuth(name="Authorization", api_key=secret_key, location="header"),
        paginator=HeaderLinkPaginator(),
    )
    token_of_account: dict[str, str] = {}

    @dlt.resource(primary_key="id", write_disposition={"disposition": "merge", "strategy": "scd2"})
    def links() -> Iterator[list[dict[str, Any]]]:
        yield from client.paginate("/v1/links", params={"per_page": PER_PAGE})

    @dlt.resource(
        primary_key="id", write_disposition={"disposition": "merge", "strategy": "upsert"}
    )
    def accounts() -> Iterator[list[dict[str, Any]]]:
        for token in link_tokens:
            params = {"link_token": token, "per_page": PER_PAGE}
            for page in client.paginate("/v1/accounts", params=params):
                for account in page:
                    token_of_account[account["id"]] = token
                yield page

    @dlt.transformer(
        data_from=accounts,
        primary_key=("account_id", "available", "current", "limit"),
        write_disposition={"disposition": "merge", "strategy": "insert-only"},
    )
    def balances(page: list[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
        observed = datetime.now(UTC).isoformat()
        yield [
            {"account_id": a["id"], "observed_at": observed, **(a.get("balance") or {})}
            for a in page
        ]

    @dlt.transformer(
        data_from=accounts,
        primary_key="id",
        write_disposition={"disposition": "merge", "strategy": "upsert"},
    )
    def movements(page: list[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
        cursors = dlt.current.resource_state().setdefault("cursors", {})
        for account in page:
            account_id = account["id"]
            cursor = cursors.get(account_id)
            start = since
            if cursor is not None:
                back = date.fromisoformat(cursor[:10]) - timedelta(days=LOOKBACK_DAYS)
                start = back.isoformat()
            params = {
                "link_token": token_of_account[account_id],
                "since": start,
                "per_page": PER_PAGE,
                "confirmed_only": "false",
            }
            newest = cursor
            for rows in client.paginate(f"/v1/accounts/{account_id}/movements", params=params):
                for row in rows:
                    row["account_id"] = account_id
                    if newest is None or row["post_date"] > newest:
                        newest = row["post_date"]
                yield rows
            if newest is not None:
                cursors[account_id] = newest

    return links, accounts, balances, movements


def main() -> None:
    """Run the pipeline once into --database-url."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--api-url", required=True)
    parser.add_argument("--tokens-file", required=True)
    parser.add_argument("--since", required=True, help="first post_date to load (YYYY-MM-DD)")
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--pipelines-dir", required=True)
    args = parser.parse_args()
    with open(args.tokens_file) as handle:
        tokens = [line.strip() for line in handle if line.strip()]
    pipeline = dlt.pipeline(
        pipeline_name="fintoc_bench",
        destination=dlt.destinations.postgres(credentials=args.database_url),
        dataset_name="fintoc_dlt",
        pipelines_dir=args.pipelines_dir,
    )
    source = fintoc_source(args.api_url, os.environ["FINTOC_SECRET_KEY"], tokens, args.since)
    info = pipeline.run(source)
    info.raise_on_failed_jobs()


if __name__ == "__main__":
    main()
