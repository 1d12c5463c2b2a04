"""Demo data: two branches, five staff logins, a dozen jobs in various stages, the parts catalogue and three
suppliers served by the supplier sandbox (two REST APIs and a CSV feed).

Seeding goes through the same use cases as the API, so the jobs have real histories. It is
idempotent: each branch, user and job is looked up before it is created.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from stdnum import luhn

from domain.identifiers import normalise_phone
from domain.model import Actor, Customer, Device, EstimateLine, FaultCategory, LineKind, Tier
from domain.parts import Part
from domain.stages import Role, Stage
from integrations.sandbox.catalogue import CATALOGUE
from integrations.suppliers.base import AdapterKind
from service.persistence.tables import job_t
from service.secrets import PasscodeCipher
from service.settings import Settings
from service.uow import Database, UnitOfWork
from service.usecases import jobs, parts, pickup, staff, suppliers
from service.usecases.parts import LineRequest

DEMO_PASSWORD = "atelier-demo"  # noqa: S105 (published demo login, never used outside --demo)
WEEKDAYS_0900_1900 = {d: [["09:00", "19:00"]] for d in ("mon", "tue", "wed", "thu", "fri", "sat")}
WEEKDAYS_0900_1800 = {d: [["09:00", "18:00"]] for d in ("mon", "tue", "wed", "thu", "fri")}

BRANCHES = (
    ("valence", "Atelier Valence", "Europe/Paris", WEEKDAYS_0900_1900),
    ("guilherand", "Atelier Guilherand-Granges", "Europe/Paris", WEEKDAYS_0900_1800),
)
USERS = (
    ("desk.valence", Role.FRONT_DESK, "valence"),
    ("tech.valence", Role.TECHNICIAN, "valence"),
    ("desk.guilherand", Role.FRONT_DESK, "guilherand"),
    ("tech.guilherand", Role.TECHNICIAN, "guilherand"),
    ("manager", Role.MANAGER, None),
)


# (name, adapter, sandbox tenant): two suppliers that quote differently, and a stock feed.
SUPPLIERS = (
    ("FastParts", AdapterKind.REST_JSON, "fastparts"),
    ("BudgetParts", AdapterKind.REST_JSON, "budgetparts"),
    ("FeedParts", AdapterKind.CSV_FEED, "feedparts"),
)
DEMO_SUPPLIER_KEY = "demo-key"
DEMO_MANAGER = Actor(0, "demo", Role.MANAGER, None)  # who seeds: a chain-wide manager


def demo_imei(n: int) -> str:
    body = f"35693803{n:06d}"
    return body + luhn.calc_check_digit(body)


@dataclass(frozen=True)
class DemoJob:
    branch: str
    customer: tuple[str, str]
    device: tuple[str, str]
    fault: FaultCategory
    description: str
    tier: Tier = Tier.STANDARD
    budget: int | None = None
    passcode: str | None = None
    steps: tuple[Any, ...] = field(default=())


_SCREEN = (
    EstimateLine(LineKind.PART, "OLED screen", 1, 18900, "IPH13-SCREEN-OLED"),
    EstimateLine(LineKind.LABOUR, "Screen replacement", 1, 3000),
)
_BATTERY = (
    EstimateLine(LineKind.PART, "Battery", 1, 5900, "SGS21-BATTERY"),
    EstimateLine(LineKind.LABOUR, "Battery replacement", 1, 2500),
)
_TO_REPAIR = ("diagnosing", ("estimate", _SCREEN), "awaiting_approval", ("approve", True), "repairing")

DEMO_JOBS = (
    DemoJob(
        "valence",
        ("Camille Martin", "06 12 34 56 78"),
        ("Apple", "iPhone 13"),
        FaultCategory.SCREEN,
        "Cracked screen after a fall, touch works",
        Tier.EXPRESS,
        30000,
        "1234",
    ),
    DemoJob(
        "valence",
        ("Lucas Bernard", "06 23 45 67 89"),
        ("Samsung", "Galaxy S21"),
        FaultCategory.BATTERY,
        "Battery drains in two hours",
        steps=("diagnosing",),
    ),
    DemoJob(
        "valence",
        ("Léa Dubois", "06 34 56 78 90"),
        ("Apple", "iPhone 12"),
        FaultCategory.SCREEN,
        "Lines on the display",
        steps=("diagnosing", ("estimate", _SCREEN), "awaiting_approval"),
    ),
    DemoJob(
        "valence",
        ("Hugo Thomas", "06 45 67 89 01"),
        ("Apple", "iPhone 13"),
        FaultCategory.SCREEN,
        "Screen black, phone vibrates",
        Tier.EXPRESS,
        25000,
        "0000",
        steps=("diagnosing", ("estimate", _SCREEN), "awaiting_parts", ("parts", "IPH13-SCREEN-OLED")),
    ),
    DemoJob(
        "valence",
        ("Chloé Robert", "06 56 78 90 12"),
        ("Google", "Pixel 7"),
        FaultCategory.CHARGING_PORT,
        "Charges only at an angle",
        steps=(*_TO_REPAIR,),
    ),
    DemoJob(
        "valence",
        ("Nathan Richard", "06 67 89 01 23"),
        ("Apple", "iPhone 11"),
        FaultCategory.BATTERY,
        "Shuts down at 30%",
        steps=(*_TO_REPAIR, "quality_check", "ready_for_pickup"),
    ),
    DemoJob(
        "valence",
        ("Manon Petit", "06 78 90 12 34"),
        ("Samsung", "Galaxy A52"),
        FaultCategory.WATER_DAMAGE,
        "Dropped in the sink",
        steps=("diagnosing", "on_hold"),
    ),
    DemoJob(
        "guilherand",
        ("Louis Durand", "07 81 23 45 67"),
        ("Apple", "iPhone 14"),
        FaultCategory.BACK_GLASS,
        "Back glass shattered",
    ),
    DemoJob(
        "guilherand",
        ("Emma Leroy", "07 69 12 34 56"),
        ("Xiaomi", "Redmi Note 12"),
        FaultCategory.SOFTWARE,
        "Stuck on boot logo",
        Tier.EXPRESS,
        8000,
        steps=("diagnosing",),
    ),
    DemoJob(
        "guilherand",
        ("Jules Moreau", "07 34 56 78 90"),
        ("Samsung", "Galaxy S22"),
        FaultCategory.CAMERA,
        "Rear camera blurry",
        steps=("diagnosing", ("estimate", _BATTERY), "awaiting_approval", ("approve", False), "ready_for_pickup"),
    ),
    DemoJob(
        "guilherand",
        ("Inès Simon", "07 45 67 89 01"),
        ("Apple", "iPhone 12 mini"),
        FaultCategory.BATTERY,
        "Battery swollen",
        steps=(*_TO_REPAIR, "quality_check", "ready_for_pickup", "collected"),
    ),
    DemoJob(
        "guilherand",
        ("Adam Laurent", "07 56 78 90 12"),
        ("OnePlus", "Nord 2"),
        FaultCategory.OTHER,
        "Customer changed their mind",
        steps=("cancelled",),
    ),
)


async def seed_demo(
    db: Database,
    cipher: PasscodeCipher,
    settings: Settings,
    now: Callable[[], datetime],
    *,
    sandbox_url: str,
    webhook_secret: str,
) -> int:
    """Create what is missing of the demo data; returns how many jobs were created."""
    await _seed_parts_and_suppliers(db, cipher, settings, now(), sandbox_url, webhook_secret)
    async with db.transaction() as uow:
        for code, name, tz, hours in BRANCHES:
            if await uow.branches.by_code(code) is None:
                await staff.create_branch(uow, code, name, tz, hours, now=now())
        for username, role, branch in USERS:
            if await uow.users.by_username(username) is None:
                await staff.create_user(uow, username, DEMO_PASSWORD, role, branch, now=now())
    created = 0
    for n, demo in enumerate(DEMO_JOBS):
        async with db.transaction() as uow:
            created += await _seed_job(uow, n, demo, cipher, settings, now)
    return created


async def _seed_parts_and_suppliers(
    db: Database, cipher: PasscodeCipher, settings: Settings, now: datetime, sandbox_url: str, webhook_secret: str
) -> None:
    manager = DEMO_MANAGER
    async with db.transaction() as uow:
        known = await uow.catalogue.existing(p.sku for p in CATALOGUE)
        for item in CATALOGUE:
            if item.sku not in known:
                await parts.add_part(uow, manager, Part(item.sku, item.description, item.models), now=now)
        existing = {s.supplier.name for s in await uow.suppliers.list()}
        for name, adapter, tenant in SUPPLIERS:
            if name in existing:
                continue
            cmd = suppliers.SupplierCommand(
                name=name,
                adapter=adapter,
                base_url=f"{sandbox_url}/t/{tenant}",
                api_key=DEMO_SUPPLIER_KEY,
                webhook_secrets=[webhook_secret],
                poll_interval_seconds=300,
            )
            await suppliers.create_supplier(uow, manager, cmd, now=now, cipher=cipher, allow_private=True)


async def _actor(uow: UnitOfWork, username: str) -> Actor:
    user = await uow.users.by_username(username)
    assert user is not None
    return Actor(user.id, user.username, user.role, user.branch_id)


async def _seed_job(
    uow: UnitOfWork, n: int, demo: DemoJob, cipher: PasscodeCipher, settings: Settings, now: Callable[[], datetime]
) -> int:
    imei = demo_imei(n)
    exists = await uow.connection.execute(select(job_t.c.id).where(job_t.c.device_imei == imei))
    if exists.first() is not None:
        return 0
    desk = await _actor(uow, f"desk.{demo.branch}")
    tech = await _actor(uow, f"tech.{demo.branch}")
    cmd = jobs.IntakeCommand(
        customer=Customer(None, demo.customer[0], normalise_phone(demo.customer[1]), None, True),
        device=Device(demo.device[0], demo.device[1], imei, None, "black", "Scratches on the frame", ("case",)),
        fault_category=demo.fault,
        fault_description=demo.description,
        tier=demo.tier,
        preapproved_budget_cents=demo.budget,
        passcode=demo.passcode,
    )
    job = await jobs.intake(
        uow,
        desk,
        cmd,
        now=now(),
        sla=settings.sla_policy,
        cipher=cipher,
        express_capacity=settings.express_capacity_per_day,
    )
    for step in demo.steps:
        if step == Stage.COLLECTED:  # the demo has no customer to bring the code: a manager's recorded hand-over
            request = pickup.PickupRequest(reason="collected before the demo")
            job = await pickup.hand_over_in(uow, DEMO_MANAGER, job.ref, request, now=now(), settings=settings)
        elif isinstance(step, str):
            stage = Stage(step)
            actor = desk if stage is Stage.CANCELLED else tech
            job = await jobs.move(uow, actor, job.ref, job.version, stage, now=now(), settings=settings, cipher=cipher)
        elif step[0] == "estimate":
            job = await jobs.set_estimate(uow, tech, job.ref, job.version, step[1], now=now())
        elif step[0] == "approve":
            job = await jobs.record_approval(uow, desk, job.ref, job.version, step[1], now=now())
        elif step[0] == "parts":
            view, _ = await parts.add_lines(
                uow, tech, job.ref, [LineRequest(step[1], 1)], now=now(), sla=settings.sla_policy
            )
            job = view.job
    return 1
