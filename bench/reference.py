"""Reference servers for `bench/api.py`, served by granian exactly as `atelier serve` serves Atelier.

- `plain_app`: a plain Litestar JSON endpoint, the framework's ceiling on this machine.
- `bare_app`: Litestar plus an asyncpg pool (no ORM, no auth, no validation) running the SAME SQL as
  Atelier's intake and `GET /api/v1/jobs/{ref}`, statement for statement, on the same tables of the
  same database: the database's ceiling for that work.

Run by the benchmark as `python -m bench.reference plain|bare --port P --workers N`. The bare app reads
`BENCH_PG_DSN` (a plain `postgresql://` DSN), `BENCH_BRANCH_ID`, `BENCH_ACTOR` and `BENCH_POOL_SIZE`.
"""

from __future__ import annotations

import argparse
import json
import os
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import msgspec
from litestar import Litestar, Request, Response, get, post
from litestar.datastructures import State

# --- the statements Atelier runs (SQLAlchemy's compiled text, captured with echo) -------------------
# Intake, in one transaction: BranchRepository.by_id, CustomerRepository.add, JobRepository.add
# (the job, then its `created` event through `_flush_events`).
SELECT_BRANCH = (
    "SELECT branch.id, branch.code, branch.name, branch.timezone, branch.hours, branch.created_at \n"
    "FROM branch \nWHERE branch.id = $1::INTEGER"
)
INSERT_CUSTOMER = (
    "INSERT INTO customer (name, phone, email, sms_consent, created_at) VALUES ($1::VARCHAR, $2::VARCHAR, "
    "$3::VARCHAR, $4::BOOLEAN, $5::TIMESTAMP WITH TIME ZONE) RETURNING customer.id"
)
INSERT_JOB = (
    "INSERT INTO repair_job (branch_id, customer_id, device_brand, device_model, device_imei, device_serial, "
    "device_colour, device_condition, device_accessories, fault_category, fault_description, tier, priority, "
    "due_at, stage, held_from, technician_id, estimate, approval, preapproved_budget_cents, outcome, "
    "passcode_ciphertext, version, created_at, updated_at) VALUES ($1::INTEGER, $2::INTEGER, $3::VARCHAR, "
    "$4::VARCHAR, $5::VARCHAR, $6::VARCHAR, $7::VARCHAR, $8::VARCHAR, $9::JSON, $10::VARCHAR, $11::VARCHAR, "
    "$12::VARCHAR, $13::INTEGER, $14::TIMESTAMP WITH TIME ZONE, $15::VARCHAR, $16::VARCHAR, $17::INTEGER, "
    "$18::JSON, $19::JSON, $20::BIGINT, $21::VARCHAR, $22::VARCHAR, $23::INTEGER, "
    "$24::TIMESTAMP WITH TIME ZONE, $25::TIMESTAMP WITH TIME ZONE) RETURNING repair_job.id"
)
INSERT_EVENT = (
    "INSERT INTO job_event (job_id, at, actor, kind, from_stage, to_stage, note, data) VALUES ($1::INTEGER, "
    "$2::TIMESTAMP WITH TIME ZONE, $3::VARCHAR, $4::VARCHAR, $5::VARCHAR, $6::VARCHAR, $7::VARCHAR, $8::JSON) "
    "RETURNING job_event.id"
)
# GET /api/v1/jobs/{ref}: JobRepository.get through `_scoped` (branch visibility). One statement, so the
# reference runs it outside a transaction (autocommit): any BEGIN/COMMIT around it is Atelier's overhead.
SELECT_JOB = (
    "SELECT repair_job.id, repair_job.branch_id, repair_job.customer_id, repair_job.device_brand, "
    "repair_job.device_model, repair_job.device_imei, repair_job.device_serial, repair_job.device_colour, "
    "repair_job.device_condition, repair_job.device_accessories, repair_job.fault_category, "
    "repair_job.fault_description, repair_job.tier, repair_job.priority, repair_job.due_at, repair_job.stage, "
    "repair_job.held_from, repair_job.technician_id, repair_job.estimate, repair_job.approval, "
    "repair_job.preapproved_budget_cents, repair_job.outcome, repair_job.version, repair_job.created_at, "
    "repair_job.updated_at, repair_job.passcode_ciphertext IS NOT NULL AS has_passcode, "
    "customer.name AS customer_name, customer.phone AS customer_phone, customer.email AS customer_email, "
    "customer.sms_consent AS customer_sms_consent, staff_user.username AS technician_username, "
    "branch.code AS branch_code \n"
    "FROM repair_job JOIN customer ON customer.id = repair_job.customer_id "
    "JOIN branch ON branch.id = repair_job.branch_id "
    "LEFT OUTER JOIN staff_user ON staff_user.id = repair_job.technician_id \n"
    "WHERE repair_job.branch_id = $1::INTEGER AND repair_job.id = $2::INTEGER"
)

_REF = re.compile(r"^AT-(\d{1,12})$")
_PRIORITY = {"express": 0, "standard": 1}
_DUE = {"express": timedelta(hours=4), "standard": timedelta(days=3)}


# --- plain: the framework's ceiling ------------------------------------------------------------------


@get("/plain")
async def plain() -> dict[str, Any]:
    return {"status": "ok", "service": "reference", "items": [1, 2, 3]}


def plain_app() -> Litestar:
    return Litestar(route_handlers=[plain], debug=False)


# --- bare asyncpg: the database's ceiling for the same statements ----------------------------------


async def _init_connection(conn: asyncpg.Connection) -> None:
    # As SQLAlchemy's asyncpg dialect does: JSON parameters go as text serialised by the caller, JSON
    # columns come back decoded.
    await conn.set_type_codec("json", encoder=str, decoder=json.loads, schema="pg_catalog")


async def _no_reset(_conn: asyncpg.Connection) -> None:
    """Every handler's work ends with its transaction and sets no session state, so the pool's default
    reset query (one more round trip on each release) is not needed: the tighter ceiling."""


@asynccontextmanager
async def _pool(app: Litestar) -> AsyncIterator[None]:
    size = int(os.environ.get("BENCH_POOL_SIZE", "20"))
    pool = await asyncpg.create_pool(
        os.environ["BENCH_PG_DSN"], min_size=min(2, size), max_size=size, init=_init_connection, reset=_no_reset
    )
    app.state.pool = pool
    try:
        yield
    finally:
        await pool.close()


@get("/bare/ready")
async def bare_ready(state: State) -> dict[str, Any]:
    async with state.pool.acquire() as conn:
        return {"status": "ok", "one": await conn.fetchval("SELECT 1")}


@post("/bare/jobs", status_code=201)
async def bare_intake(request: Request[Any, Any, Any], state: State) -> Response[Any]:
    body = msgspec.json.decode(await request.body())
    customer, device, fault, tier = body["customer"], body["device"], body["fault"], body["tier"]
    now = datetime.now(UTC)
    due_at = now + _DUE[tier]
    branch_id = int(os.environ["BENCH_BRANCH_ID"])
    actor = os.environ.get("BENCH_ACTOR", "bench")
    async with state.pool.acquire() as conn, conn.transaction():
        branch = await conn.fetchrow(SELECT_BRANCH, branch_id)
        customer_id = await conn.fetchval(
            INSERT_CUSTOMER,
            customer["name"],
            customer["phone"],
            customer.get("email"),
            customer.get("sms_consent", False),
            now,
        )
        job_id = await conn.fetchval(
            INSERT_JOB,
            branch["id"],
            customer_id,
            device["brand"],
            device["model"],
            device.get("imei"),
            device.get("serial_number"),
            device.get("colour"),
            device.get("condition", ""),
            json.dumps(device.get("accessories", [])),
            fault["category"],
            fault["description"],
            tier,
            _PRIORITY[tier],
            due_at,
            "received",
            None,
            None,
            "[]",
            "null",  # SQLAlchemy's JSON type stores Python None as JSON 'null', not SQL NULL
            body.get("preapproved_budget_cents"),
            None,
            None,
            1,
            now,
            now,
        )
        await conn.fetchval(
            INSERT_EVENT,
            job_id,
            now,
            actor,
            "created",
            None,
            "received",
            None,
            json.dumps({"tier": tier, "due_at": due_at.isoformat()}),
        )
    ref = f"AT-{job_id:06d}"
    out = {
        **body,
        "ref": ref,
        "branch": branch["code"],
        "stage": "received",
        "due_at": due_at,
        "version": 1,
        "created_at": now,
        "updated_at": now,
    }
    return Response(out, status_code=201, headers={"ETag": '"v1"', "Location": f"/bare/jobs/{ref}"})


@get("/bare/jobs/{ref:str}")
async def bare_get(ref: str, state: State) -> Response[Any]:
    match = _REF.match(ref)
    if match is None:
        return Response({"status": 404}, status_code=404)
    branch_id = int(os.environ["BENCH_BRANCH_ID"])
    async with state.pool.acquire() as conn:  # one statement: no BEGIN/COMMIT round trips around it
        row = await conn.fetchrow(SELECT_JOB, branch_id, int(match.group(1)))
    if row is None:
        return Response({"status": 404}, status_code=404)
    job = dict(row)
    job["ref"] = ref
    return Response(job, headers={"ETag": f'"v{job["version"]}"'})


def bare_app() -> Litestar:
    return Litestar(route_handlers=[bare_ready, bare_intake, bare_get], lifespan=[_pool], debug=False)


# --- serving -------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("app", choices=["plain", "bare"])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()

    from granian import Granian
    from granian.constants import Interfaces

    # The same server settings as `atelier serve` (service/cli.py), so only the application differs.
    Granian(
        f"bench.reference:{args.app}_app",
        factory=True,
        address=args.host,
        port=args.port,
        interface=Interfaces.ASGI,
        workers=args.workers,
        respawn_failed_workers=True,
        log_access=False,
    ).serve()


if __name__ == "__main__":
    main()
