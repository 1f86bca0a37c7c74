"""The hand-written default organization and the institutions table.

The first link is the exact example of Fintoc's Link object documentation
(``/work/shared/seeds/link-object.txt``): its payload must sync byte for byte, so it
is written out here rather than generated.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from sync.sandbox.clock import EPOCH, fmt_ts
from sync.sandbox.model import Account, Balance, Institution, Link

INSTITUTIONS: dict[str, Institution] = {
    inst.id: inst
    for inst in [
        Institution("cl_banco_de_chile", "Banco de Chile"),
        Institution("cl_banco_estado", "BancoEstado"),
        Institution("cl_banco_bci", "Banco BCI"),
        Institution("cl_banco_santander", "Banco Santander"),
        Institution("cl_banco_itau", "Banco Itaú"),
        Institution("cl_banco_falabella", "Banco Falabella"),
        Institution("cl_banco_scotiabank", "Scotiabank"),
        Institution("cl_banco_bice", "Banco BICE"),
        Institution("cl_banco_security", "Banco Security"),
        Institution("cl_mercado_pago", "Mercado Pago"),
        Institution("cl_tenpo", "Tenpo"),
        Institution("cl_mach", "MACH"),
    ]
}

SEED_LINK_ID = "link_nMNejK7BT8oGbvO4"
SEED_LINK_TOKEN = "link_nMNejK7BT8oGbvO4_token_GLtktZX5SKphRtJFe_yJTDWT"  # noqa: S105 - the documented example token
LEGACY_LINK_ID = "6n12zLmai3lLE9Dq"
HISTORY_DAYS = 400

#: The default history window: about 400 days before the sandbox clock.
HISTORY_START = EPOCH.date() - timedelta(days=HISTORY_DAYS)


#: (account id, rank, delay): the rank-th newest movement the account shows at the start
#: is removed by the bank after ``delay``, so a short advance always shows a removal.
SCRIPTED_REMOVALS = [("acc_Kp3mWx9ZqL2vBn8T", 2, timedelta(hours=12))]


@dataclass(frozen=True)
class AccountSpec:
    """Compact description of a curated account."""

    id: str
    name: str
    official_name: str
    number: str | None
    type: str
    currency: str
    balance: tuple[int, int, int]
    refreshed_at: str | None = "2026-11-01T06:00:00.000Z"
    rate: float = 3.0
    volatility: float = 0.35


def _accounts(link: Link, holder_name: str, specs: list[AccountSpec]) -> list[Account]:
    start = max(HISTORY_START, date.fromisoformat(link.created_at[:10]))
    return [
        Account(
            id=s.id,
            link_id=link.id,
            name=s.name,
            official_name=s.official_name,
            number=s.number,
            type=s.type,
            currency=s.currency,
            holder_id=link.holder_id,
            holder_name=holder_name,
            balance=Balance(*s.balance),
            refreshed_at=s.refreshed_at,
            history_start=start,
            rate=s.rate,
            volatility=s.volatility,
        )
        for s in specs
    ]


def _link(link_id: str, secret: str, inst: str, holder: tuple[str, str, str], **kw: object) -> Link:
    holder_id, holder_type, username = holder
    link = Link(
        id=link_id,
        token=f"{link_id}_token_{secret}",
        holder_id=holder_id,
        holder_type=holder_type,
        username=username,
        institution=INSTITUTIONS[inst],
        created_at="2024-01-01T00:00:00.000Z",
        last_time_refreshed="2026-11-01T06:00:00.000Z",
        account_ids=[],
    )
    for key, value in kw.items():
        setattr(link, key, value)
    return link


def _seed_link() -> tuple[Link, list[Account]]:
    link = _link(
        SEED_LINK_ID,
        "GLtktZX5SKphRtJFe_yJTDWT",
        "cl_banco_de_chile",
        ("134910798", "individual", "183917137"),
        created_at="2020-04-22T21:10:19.254Z",
        last_time_refreshed="2020-04-22T23:10:19.254Z",
        refresh_status="refreshing",
        # Stays byte-identical to the documentation for the first week of advances.
        frozen_until=EPOCH + timedelta(days=7),
        flip_rate=0.0,
    )
    refreshed = "2020-04-22T23:10:19.254Z"
    specs = [
        AccountSpec(
            "acc_Z6AwnGn4idL7DPj4",
            "Cuenta Corriente",
            "Cuenta Corriente Moneda Local",
            "9530516286",
            "checking_account",
            "CLP",
            (7010510, 7010510, 7510510),
            refreshed,
        ),
        AccountSpec(
            "acc_BO381oEATXonG6bj",
            "Línea de Crédito",
            "Linea De Credito Personas",
            "19534121467",
            "line_of_credit",
            "CLP",
            (500000, 500000, 500000),
            refreshed,
            rate=1.0,
        ),
    ]
    return link, _accounts(link, "Jon Snow", specs)


def _business_link() -> tuple[Link, list[Account]]:
    link = _link(
        "link_Qb7wKd2XyzNn4Ra1",
        "p9Xc2LmQw8RtYv3Ks_aBcDeFgH",
        "cl_banco_bci",
        ("765432109", "business", "765432109"),
        created_at="2023-03-14T15:22:41.118Z",
    )
    specs = [
        AccountSpec(
            "acc_Kp3mWx9ZqL2vBn8T",
            "Cuenta Corriente",
            "Cuenta Corriente Empresas",
            "70012345",
            "checking_account",
            "CLP",
            (184_302_991_550, 184_302_991_550, 184_352_991_550),
            rate=5.0,
        ),
        AccountSpec(
            "acc_Vr6tHy1JkM4sDf7Q",
            "Cuenta Corriente Dólar",
            "Cuenta Corriente Moneda Extranjera",
            "70098765",
            "checking_account",
            "USD",
            (12_345_678, 12_345_678, 12_345_678),
            rate=1.5,
        ),
        AccountSpec(
            "acc_Gz8nPq5LrT2wXc6B",
            "Tarjeta de Crédito",
            "Visa Business Platinum",
            "4412",
            "credit_card",
            "CLP",
            (3_250_000, 3_250_000, 5_000_000),
            rate=2.0,
        ),
    ]
    return link, _accounts(link, "Comercial Ñuñoa SpA", specs)


def _unicode_link() -> tuple[Link, list[Account]]:
    link = _link(
        "link_Mj4kLs8PqWe2Rt6Y",
        "Zx8Cv7Bn6Mm5Ll4Kk_qWeRtYuI",
        "cl_banco_santander",
        ("158765432", "individual", "158765432"),
        created_at="2022-08-09T10:05:33Z",
        # Forced changes so that a one-day advance shows a login_required round trip.
        script={2: "login_required", 8: "active"},
    )
    specs = [
        AccountSpec(
            "acc_Hn2bVc4XzL6kJm8P",
            "Cuenta Corriente",
            "Cuenta Corriente Santander Life",
            "0067812345",
            "checking_account",
            "CLP",
            (1_250_330, 1_250_330, 1_750_330),
        ),
        AccountSpec(
            "acc_Ws5eDr7TfG9yHu1J",
            "Cuenta de Ahorro",
            "Cuenta de Ahorro Vivienda 🏠",
            "2200456789",
            "savings_account",
            "CLP",
            (8_900_000, 8_900_000, 8_900_000),
            rate=0.3,
            volatility=0.0,
        ),
    ]
    return link, _accounts(link, "María José Pérez Ñúñez 🦙", specs)


def _login_required_link() -> tuple[Link, list[Account]]:
    link = _link(
        "link_Tg6hYj8UkI0oLp2A",
        "Qa1Ws2Ed3Rf4Tg5Yh_6Uj7Ik8O",
        "cl_banco_estado",
        ("176543210", "individual", "176543210"),
        created_at="2021-11-30T18:44:02.907Z",
        last_time_refreshed="2026-10-20T06:00:00.000Z",
        status="login_required",
        recover_rate=0.0,
    )
    specs = [
        AccountSpec(
            "acc_Lk9jHg7FdS5aQw3E",
            "CuentaRUT",
            "Cuenta RUT",
            "17654321",
            "sight_account",
            "CLP",
            (45_210, 45_210, 45_210),
            refreshed_at="2026-10-20T06:00:00.000Z",
            rate=2.0,
        ),
    ]
    return link, _accounts(link, "Sebastián Araya Gómez", specs)


def _inactive_link() -> tuple[Link, list[Account]]:
    link = _link(
        "link_Oi9uYt7ReW5qAs3D",
        "Fg4Hj5Kl6Zx7Cv8Bn_9Mq0Wp1E",
        "cl_banco_falabella",
        ("123456785", "individual", "123456785"),
        created_at="2021-06-02T09:00:00Z",
        last_time_refreshed="2025-12-31T23:59:59.999Z",
        active=False,
        status="inactive",
    )
    specs = [
        AccountSpec(
            "acc_Pz1xOc2IvU3bYn4M",
            "Cuenta Corriente",
            "CMR Cuenta Corriente",
            "19876543210",
            "checking_account",
            "CLP",
            (310_000, 310_000, 310_000),
            refreshed_at="2025-12-31T23:59:59.999Z",
            rate=1.0,
            volatility=0.0,
        ),
    ]
    return link, _accounts(link, "Andrés Fuentes Lagos", specs)


def _legacy_link() -> tuple[Link, list[Account]]:
    link = _link(
        LEGACY_LINK_ID,
        "kQ3rT8vW2xYz5AbC7dEf",
        "cl_banco_de_chile",
        ("111111111", "individual", "111111111"),
        created_at="2020-09-11T14:37:07.331Z",
        legacy=True,
        flip_rate=0.0,
    )
    specs = [
        AccountSpec(
            "JjEQx2rPTGGKbrP5",
            "Cuenta Corriente",
            "Cuenta Corriente Moneda Local",
            "0000000000",
            "checking_account",
            "CLP",
            (62_255_521, 62_255_521, 62_255_521),
            refreshed_at="2020-11-18T18:43:54.591Z",
            rate=2.0,
            volatility=0.0,
        ),
    ]
    return link, _accounts(link, "Test Customer 1", specs)


def _export_link() -> tuple[Link, list[Account]]:
    link = _link(
        "link_Ee3rRt5yYu7iIo9P",
        "Aa2Ss4Dd6Ff8Gg0Hh_Jj1Kk3Ll",
        "cl_banco_scotiabank",
        ("965551230", "business", "965551230"),
        created_at="2025-02-17T12:00:00.500Z",
    )
    specs = [
        AccountSpec(
            "acc_Ux4cVb6Nm8Qw0Er2",
            "Cuenta Corriente Dólar",
            "Cuenta Corriente USD Comercio Exterior",
            None,  # the bank reports no number for this product
            "checking_account",
            "USD",
            (98_765_43, 98_765_43, 98_765_43),
        ),
        AccountSpec(
            "acc_Ty5uIo7Pa9Sd1Fg3",
            "Línea de Crédito",
            "Línea de Crédito Empresas",
            "800123456",
            "line_of_credit",
            "CLP",
            (20_000_000, 20_000_000, 25_000_000),
            rate=0.5,
        ),
    ]
    return link, _accounts(link, "Exportadora Los Andes Ltda.", specs)


def _new_link() -> tuple[Link, list[Account]]:
    link = _link(
        "link_Nw1eQr3tYu5iOp7A",
        "Ll0Kk9Jj8Hh7Gg6Ff_5Dd4Ss3A",
        "cl_tenpo",
        ("209876543", "individual", "209876543"),
        created_at="2026-10-31T20:15:00.000Z",
        last_time_refreshed=None,
        refresh_status="refreshing",
    )
    specs = [
        AccountSpec(
            "acc_Rf2tGb4YhN6uJm8K",
            "Cuenta Vista",
            "Cuenta Tenpo",
            "111209876543",
            "sight_account",
            "CLP",
            (0, 0, 0),
            refreshed_at=None,  # the initial historical load has not finished yet
            rate=1.0,
        ),
    ]
    return link, _accounts(link, "José Ángel Muñoz", specs)


def _doomed_link() -> tuple[Link, list[Account]]:
    link = _link(
        "link_Dd5fGh7JkL9zXc1V",
        "Bb3Nn5Mm7Qq9Ww1Ee_Rr2Tt4Yy",
        "cl_banco_bice",
        ("771234560", "business", "771234560"),
        created_at="2024-05-05T05:05:05.555Z",
        script={6: "delete"},  # disappears from the list 36 hours after start
    )
    specs = [
        AccountSpec(
            "acc_Bq1wEr3TyU5iOp7Z",
            "Cuenta Corriente",
            "Cuenta Corriente Pyme",
            "0123456789",
            "checking_account",
            "CLP",
            (5_432_100, 5_432_100, 6_432_100),
        ),
    ]
    return link, _accounts(link, "Transportes Pérez e Hijos Ltda.", specs)


def default_org() -> list[tuple[Link, list[Account]]]:
    """The curated links, seed example first."""
    builders = [
        _seed_link,
        _business_link,
        _unicode_link,
        _login_required_link,
        _inactive_link,
        _legacy_link,
        _export_link,
        _new_link,
        _doomed_link,
    ]
    return [build() for build in builders]


def epoch_stamp() -> str:
    """The clock start as Fintoc would print it."""
    return fmt_ts(EPOCH)
