"""Shared test helpers: the documented seed link and Link-header parsing."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx

SEED_TOKEN = "link_nMNejK7BT8oGbvO4_token_GLtktZX5SKphRtJFe_yJTDWT"
ROOT = Path(__file__).resolve().parents[2]
#: shared/ sits beside the repository (CI clones it there); /work/shared on our machines.
SEED_FILES = [
    ROOT.parent / "shared" / "seeds" / "link-object.txt",
    Path("/work/shared/seeds/link-object.txt"),
]

#: A verbatim copy of the documentation example, for checkouts without shared/.
DOCUMENTED_LINK: dict[str, Any] = {
    "id": "link_nMNejK7BT8oGbvO4",
    "object": "link",
    "accounts": [
        {
            "id": "acc_Z6AwnGn4idL7DPj4",
            "object": "account",
            "balance": {"available": 7010510, "current": 7010510, "limit": 7510510},
            "currency": "CLP",
            "holder_id": "134910798",
            "holder_name": "Jon Snow",
            "name": "Cuenta Corriente",
            "number": "9530516286",
            "official_name": "Cuenta Corriente Moneda Local",
            "type": "checking_account",
        },
        {
            "id": "acc_BO381oEATXonG6bj",
            "object": "account",
            "balance": {"available": 500000, "current": 500000, "limit": 500000},
            "currency": "CLP",
            "holder_id": "134910798",
            "holder_name": "Jon Snow",
            "name": "Línea de Crédito",
            "number": "19534121467",
            "official_name": "Linea De Credito Personas",
            "type": "line_of_credit",
        },
    ],
    "active": True,
    "created_at": "2020-04-22T21:10:19.254Z",
    "holder_id": "134910798",
    "holder_type": "individual",
    "institution": {"id": "cl_banco_de_chile", "country": "cl", "name": "Banco de Chile"},
    "last_time_refreshed": "2020-04-22T23:10:19.254Z",
    "link_token": "link_nMNejK7BT8oGbvO4_token_GLtktZX5SKphRtJFe_yJTDWT",
    "mode": "test",
    "refresh_status": "refreshing",
    "status": "active",
    "username": "183917137",
}
_LINK = re.compile(r'<(?P<url>[^>]*)>;\s*rel="(?P<rel>[^"]*)"')


def seed_file_link() -> dict[str, Any] | None:
    """The example JSON read from shared/seeds/link-object.txt, if that file is here."""
    for path in SEED_FILES:
        if path.exists():
            text = path.read_text(encoding="utf-8")
            payload, _ = json.JSONDecoder().raw_decode(text[text.index("{") :])
            return dict(payload)
    return None


def documented_link() -> dict[str, Any]:
    """The Link Object documentation example (from the seed file when available)."""
    return seed_file_link() or json.loads(json.dumps(DOCUMENTED_LINK))


def rels(response: httpx.Response) -> dict[str, str]:
    """The Link header as {rel: url}."""
    return {m["rel"]: m["url"] for m in _LINK.finditer(response.headers["link"])}


def page_of(url: str) -> int:
    """The page number in a Link URL."""
    return int(dict(parse_qsl(urlsplit(url).query))["page"])
