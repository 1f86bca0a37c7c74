"""JSON shapes of links, accounts and institutions, as Fintoc serves them."""

from __future__ import annotations

from typing import Any

from sync.sandbox.model import Account, Institution, Link

_INSTITUTION_PRODUCTS = ["movements", "payments", "subscription"]


def institution(inst: Institution) -> dict[str, str]:
    """The embedded institution form ``{id, country, name}``."""
    return {"id": inst.id, "country": inst.country, "name": inst.name}


def institution_full(inst: Institution) -> dict[str, Any]:
    """The ``GET /v1/institutions`` form (note ``object_name``, not ``object``)."""
    products = [
        {"holder_type": holder, "name": name}
        for holder in ("individual", "business")
        for name in _INSTITUTION_PRODUCTS
    ]
    return {
        "id": inst.id,
        "object_name": "institution",
        "country": inst.country,
        "name": inst.name,
        "products": products,
        "type": "bank",
    }


def link(lnk: Link, accounts: list[Account] | None) -> dict[str, Any]:
    """A Link; ``accounts`` is None on list/PATCH. ``link_token`` is always null."""
    embedded = None if accounts is None else [account(a, full=False) for a in accounts]
    if lnk.legacy:
        # The 2020 shape: no object, active, status, refresh_status, last_time_refreshed.
        return {
            "id": lnk.id,
            "holder_id": lnk.holder_id,
            "username": lnk.username,
            "holder_type": lnk.holder_type,
            "created_at": lnk.created_at,
            "institution": institution(lnk.institution),
            "link_token": None,
            "mode": lnk.mode,
            "accounts": embedded,
        }
    return {
        "id": lnk.id,
        "object": "link",
        "accounts": embedded,
        "active": lnk.active,
        "created_at": lnk.created_at,
        "holder_id": lnk.holder_id,
        "holder_type": lnk.holder_type,
        "institution": institution(lnk.institution),
        "last_time_refreshed": lnk.last_time_refreshed,
        "link_token": None,
        "mode": lnk.mode,
        "refresh_status": lnk.refresh_status,
        "status": lnk.status,
        "username": lnk.username,
    }


def account(
    acc: Account,
    *,
    full: bool,
    next_refresh: str | None = None,
    refreshed_at: str | None = None,
) -> dict[str, Any]:
    """An Account; ``full`` adds the movements-product fields of ``/v1/accounts``
    (``refreshed_at`` as given, else the stored one)."""
    out: dict[str, Any] = {"id": acc.id}
    if acc.id.startswith("acc_"):  # legacy (2020) accounts carried no ``object`` key
        out["object"] = "account"
    out["balance"] = {
        "available": acc.balance.available,
        "current": acc.balance.current,
        "limit": acc.balance.limit,
    }
    out.update(
        currency=acc.currency,
        holder_id=acc.holder_id,
        holder_name=acc.holder_name,
        name=acc.name,
    )
    if full:
        out["next_refresh"] = next_refresh
    out.update(number=acc.number, official_name=acc.official_name)
    if full:
        out.update(
            refresh_status=acc.refresh_status,
            refreshed_at=refreshed_at or acc.refreshed_at,
            removed_from_link=acc.removed_from_link,
        )
    out["type"] = acc.type
    return out
