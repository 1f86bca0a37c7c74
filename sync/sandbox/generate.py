"""Generated links for ``n_links=N`` (pagination and load tests)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from sync.sandbox import _rand
from sync.sandbox.catalog import HISTORY_START, INSTITUTIONS, default_org
from sync.sandbox.clock import EPOCH, fmt_ts
from sync.sandbox.model import Account, Balance, Link

_FIRST = ["Camila", "Matías", "Sofía", "Benjamín", "Valentina", "Agustín", "Ñusta", "Tomás"]
_LAST = ["González", "Muñoz", "Rojas", "Díaz", "Pérez", "Soto", "Contreras", "Silva"]
_COMPANY = ["Inversiones", "Comercial", "Servicios", "Agrícola", "Constructora"]
_PRODUCTS = [
    ("Cuenta Corriente", "Cuenta Corriente Moneda Local", "checking_account", "CLP"),
    ("Cuenta Vista", "Cuenta Vista", "sight_account", "CLP"),
    ("Cuenta de Ahorro", "Cuenta de Ahorro a Plazo", "savings_account", "CLP"),
    ("Línea de Crédito", "Línea de Crédito Personas", "line_of_credit", "CLP"),
    ("Tarjeta de Crédito", "Tarjeta de Crédito Visa", "credit_card", "CLP"),
    ("Cuenta Corriente Dólar", "Cuenta Corriente Moneda Extranjera", "checking_account", "USD"),
]
#: Mean movements per day for generated accounts: ~100 per account over 400 days.
BULK_RATE = 0.25


@dataclass(frozen=True, slots=True)
class Shape:
    """A benchmark organization: every link active, sized exactly, uniform accounts.

    ``movements_per_account`` is the mean over ``history_days`` days before the clock
    (the daily count is random; a few percent are removed or not yet visible, so ask the
    sandbox for the exact number it serves: ``GET /_sandbox/stats?movements=1``).
    """

    accounts_per_link: int = 5
    movements_per_account: int = 2000
    history_days: int = 730


def links(seed: int, n_links: int, shape: Shape | None = None) -> list[tuple[Link, list[Account]]]:
    """The first curated links, then generated ones, ``n_links`` in total.

    With a ``shape``, only generated links of exactly that shape (no curated ones).
    """
    if shape is not None:
        return [_link(seed, i, shape) for i in range(n_links)]
    curated = default_org()[:n_links]
    return curated + [_link(seed, i) for i in range(n_links - len(curated))]


def _holder(seed: int, i: int) -> tuple[str, str, str]:
    r = _rand.rng(seed, "holder", i)
    business = r.random() < 0.3
    number = r.randint(5_000_000, 99_999_999) if not business else r.randint(76_000_000, 99_999_999)
    holder_id = f"{number}{r.choice('0123456789K')}"
    if business:
        name = f"{r.choice(_COMPANY)} {r.choice(_LAST)} SpA"
    else:
        name = f"{r.choice(_FIRST)} {r.choice(_LAST)} {r.choice(_LAST)}"
    return holder_id, "business" if business else "individual", name


def _link(seed: int, i: int, shape: Shape | None = None) -> tuple[Link, list[Account]]:
    r = _rand.rng(seed, "link", i)
    link_id = "link_" + _rand.ident(seed, "link", i)
    holder_id, holder_type, holder_name = _holder(seed, i)
    created = EPOCH - timedelta(seconds=r.randint(3600, 5 * 365 * 86400))
    status = r.choices(["active", "login_required", "inactive"], [0.85, 0.1, 0.05])[0]
    if shape is not None:  # older than the history, and readable
        created = EPOCH - timedelta(days=shape.history_days + r.randint(1, 365))
        status = "active"
    link = Link(
        id=link_id,
        token=f"{link_id}_token_{_rand.ident(seed, 'secret', i, length=24)}",
        holder_id=holder_id,
        holder_type=holder_type,
        username=holder_id,
        institution=r.choice(list(INSTITUTIONS.values())),
        created_at=fmt_ts(created, millis=r.random() < 0.7),
        last_time_refreshed=fmt_ts(EPOCH - timedelta(hours=r.randint(1, 6))),
        account_ids=[],
        active=status != "inactive",
        status=status,
        delete_rate=0.002,
    )
    start = max(HISTORY_START, created.date())
    count = r.choice([1, 2, 3, 3, 4, 5])
    if shape is not None:
        start = EPOCH.date() - timedelta(days=shape.history_days - 1)
        count = shape.accounts_per_link
    accounts = [_account(seed, link, holder_name, start, i, k) for k in range(count)]
    if shape is not None:
        for account in accounts:
            account.rate = shape.movements_per_account / shape.history_days
    return link, accounts


def _account(seed: int, link: Link, holder_name: str, start: date, i: int, k: int) -> Account:
    r = _rand.rng(seed, "account", i, k)
    name, official, kind, currency = r.choice(_PRODUCTS)
    magnitude = 10 ** r.uniform(4, 9 if link.holder_type == "business" else 7)
    current = int(magnitude)
    limit = current + r.choice([0, 0, 500_000, 2_000_000])
    return Account(
        id="acc_" + _rand.ident(seed, "account", i, k),
        link_id=link.id,
        name=name,
        official_name=official,
        number=str(r.randint(10_000_000, 99_999_999_999)),
        type=kind,
        currency=currency,
        holder_id=link.holder_id,
        holder_name=holder_name,
        balance=Balance(current, current, limit),
        refreshed_at=link.last_time_refreshed,
        history_start=start,
        rate=BULK_RATE,
        volatility=0.2,
    )
