"""Surge benchmark: a repair chain's ordinary traffic at 1x, 3x and 10x, against the production shape of
Atelier on this machine, with a consistency check of the database after every step.

    uv run python bench/surge.py [--base-rate 40] [--step-seconds 60] [--multipliers 1,3,10] [--warmup 10]
                                 [--access-log] [--seed N]

Needs PostgreSQL and Redis. The database (--database-url, default
postgresql+asyncpg://postgres@127.0.0.1:5432/bench_surge) is created if missing and RESET (schema `public`
dropped); Redis (--redis-url, default redis://127.0.0.1:6379/15) has that database FLUSHED (queues and
rate-limit buckets of an earlier run would leak into this one). Neither may be one you care about.

What runs (each in its own session, all stopped however the run ends):
- `atelier serve --workers 2` (2 API processes) and one `atelier worker`, on PostgreSQL and Redis;
- `atelier sandbox supplier`: 5 supplier tenants with faults on (latency, 5xx, 429, malformed bodies), which
  the setup orders from and the worker polls and asks for quotes, and tenant `sms`, the customers' SMS gateway;
- the load: --clients processes (httpx), open loop (bench/surge_load.py): each request is scheduled on a
  fixed-rate grid and timed from its scheduled time, so queueing shows up as latency; a client gives up
  on a request after --timeout s (15).

The chain: --branches shops (20), each with a front desk and a technician signed in from the shop's own
address (127.0.0.x: per-address limits count per shop, as behind each shop's router). A "normal Monday" is
--base-rate requests/s (40: 3x stays inside what two shared cores give, 10x is well past it): 30% board
reads (GET /api/v1/jobs?limit=20), 15% bench queue reads, 25% bench steps (the next step of the most
advanced job: diagnosis, estimate, repair, check, ready; a tick finding every job in flight is an "idle
tick"), 15% supplier webhooks (signed: stock.changed, order.eta_revised about real orders, 3% redeliveries,
2% forged), 10% intakes (a fresh Idempotency-Key each, 5% sent twice; refused with 429/503, 5xx or
unanswered ones re-sent with their key after Retry-After, up to twice) and 5% pickups with the customer's
real code, read as the customer gets it: in the SMS the worker sent through the sandbox's gateway.

Each step (--step-seconds at base x multiplier) prints: where the CPU went (the machine is shared), sent
and 2xx requests/s, p50/p99/max per operation (with --access-log, also the p99 the API measured itself, from
its access lines), answers by status, the outbox (entries written -> handled, i.e. relayed and picked up by
the worker; backlog and oldest due entry, sampled each second; time to empty), the worker's tasks (run
times by kind), the pickup code's SMS delay, the servers' warnings and errors, and the database check
(bench/surge_check.py). Last: the verdict per target, PASS or MISS (a measurement on a shared machine, not a
gate), and one JSON line. Exit status 1 only when a consistency check fails (2: the setup failed).

Logs and results.json go to bench/results/surge-<timestamp>/ (gitignored). See bench/SURGE.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import queue
import random
import sys
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from bench.api import (
    ROOT,
    BenchError,
    Processes,
    _asyncpg_dsn,
    _atelier,
    _atelier_command,
    _free_port,
    _git,
    _reset_database,
    _wait_ready,
    guarded,
    server_env,
)
from bench.surge_check import History, OutboxSample, backlog, check, outbox_kinds, outbox_lag, sample_outbox
from bench.surge_load import (
    MIX,
    BranchSetup,
    GeneratorConfig,
    OrderSetup,
    StepOrder,
    StepResult,
    SupplierSetup,
    intake_body,
    parse_code,
    run,
)
from bench.surge_report import (
    CpuSample,
    LogTail,
    StepReport,
    cpu_sample,
    cpu_split,
    op_figures,
    print_step,
    print_targets,
    summary,
    targets,
    task_figures,
)
from integrations.webhooks import new_secret

BENCH = ROOT / "bench"
DEFAULT_DB = "postgresql+asyncpg://postgres@127.0.0.1:5432/bench_surge"
DEFAULT_REDIS = "redis://127.0.0.1:6379/15"  # a database of its own: it is flushed
PASSWORD = "bench-password-not-secret"  # the bench database is thrown away on every run
MANAGER = "surge.manager"
SKU = "IPH13-SCREEN-OLED"  # every sandbox tenant carries it
# Each supplier's faults (the sandbox's knobs): what ordering (setup) and polling (the worker) go through.
FAULTS: tuple[dict[str, Any], ...] = (
    {"latency_ms": 50, "error_rate": 0.05},
    {"latency_ms": 200, "rate_429": 0.10, "retry_after_seconds": 1},
    {"latency_ms": 20, "malformed_rate": 0.05},
    {"latency_ms": 500, "error_rate": 0.20},
    {"latency_ms": 100, "error_rate": 0.10, "rate_429": 0.05, "malformed_rate": 0.02},
)
RATE_LIMITS = (60, 120, 30, 90, 300)  # the suppliers' own request limits a minute


# --- setup -----------------------------------------------------------------------------------------------


def _branch_timezone() -> str:
    """A fixed-offset zone where it is about 13:00 now: the customers' SMS are held in quiet hours
    (20:00-08:00 at the branch), which would hold the pickup codes (and the outbox) until morning."""
    now = time.gmtime()
    offset = round(13 - now.tm_hour - now.tm_min / 60)  # -11 to +13 hours: every one has an Etc/GMT zone
    return "UTC" if offset == 0 else f"Etc/GMT{'-' if offset > 0 else '+'}{abs(offset)}"  # POSIX sign: inverted


def _flush_redis(url: str) -> None:
    from redis import Redis

    client = Redis.from_url(url)
    try:
        client.flushdb()
    finally:
        client.close()


async def _staff(url: str, branches: int, timezone: str) -> None:
    """The chain in one transaction, through the app's own use cases (the CLI would take a process, and
    an argon2 hash, per user): the branches, a desk and a technician each, a chain-wide manager."""
    from domain.stages import Role
    from service.persistence.db import create_engine
    from service.secrets import hash_password
    from service.settings import Settings
    from service.uow import Database
    from service.usecases.staff import create_branch

    engine = create_engine(Settings(database_url=url))
    hashed, now = hash_password(PASSWORD), datetime.now(UTC)
    hours = {day: [["00:00", "23:59"]] for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}
    try:
        async with Database(engine).transaction() as uow:
            await uow.users.add(MANAGER, hashed, Role.MANAGER, None, now)
            for b in range(branches):
                branch = await create_branch(uow, f"s{b:02d}", f"Surge {b:02d}", timezone, hours, now=now)
                await uow.users.add(f"desk.s{b:02d}", hashed, Role.FRONT_DESK, branch.id, now)
                await uow.users.add(f"tech.s{b:02d}", hashed, Role.TECHNICIAN, branch.id, now)
    finally:
        await engine.dispose()


def _login(base: str, username: str, ip: str | None = None) -> str:
    transport = httpx.HTTPTransport(local_address=ip)
    with httpx.Client(base_url=base, transport=transport, timeout=30) as client:
        response = client.post("/api/v1/auth/token", json={"username": username, "password": PASSWORD})
    if response.status_code != 200:
        raise BenchError(f"login as {username} failed: {response.status_code} {response.text}")
    token: str = response.json()["access_token"]
    return token


def _expect(response: httpx.Response, status: int, what: str) -> dict[str, Any]:
    if response.status_code != status:
        raise BenchError(f"{what}: {response.status_code} {response.text[:500]}")
    body: dict[str, Any] = response.json()
    return body


def _suppliers(base: str, sandbox: str, token: str) -> list[tuple[int, str]]:
    """Five suppliers on sandbox tenants, each with its faults and a webhook secret; returns (id, secret)."""
    made = []
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=30) as client:
        for n, faults in enumerate(FAULTS):
            tenant, secret = f"surge{n}", new_secret()
            _expect(httpx.put(f"{sandbox}/t/{tenant}/_sandbox/faults", json=faults, timeout=10), 200, "faults")
            body = {
                "name": f"Surge supplier {n}",
                "adapter": "rest_json",
                "base_url": f"{sandbox}/t/{tenant}",
                "api_key": "bench-key",
                "webhook_secrets": [secret],
                "poll_interval_seconds": 60,
                "rate_limit_per_minute": RATE_LIMITS[n],
            }
            made.append((_expect(client.post("/api/v1/suppliers", json=body), 201, "supplier")["id"], secret))
        body = {"sku": SKU, "description": "iPhone 13 OLED display", "models": ["iPhone 13"]}
        _expect(client.post("/api/v1/parts", json=body), 201, "catalogue part")
    return made


def _place(client: httpx.Client, desk: str, tech: str, supplier_id: int) -> OrderSetup:
    """A job with one part line ordered from the supplier, through the API; a supplier fault (503) is
    retried as the counter would: ordering again re-sends the same PO."""
    key = uuid.uuid4().hex
    job = _expect(
        client.post(
            "/api/v1/jobs",
            json=intake_body("0699000000", key),
            headers={"Authorization": f"Bearer {desk}", "Idempotency-Key": key},
        ),
        201,
        "intake",
    )
    auth = {"Authorization": f"Bearer {tech}"}
    view = _expect(
        client.post(f"/api/v1/jobs/{job['ref']}/parts", json={"sku": SKU, "quantity": 1}, headers=auth),
        201,
        "part line",
    )
    line_id = view["lines"][0]["id"]
    for _ in range(20):
        response = client.post(
            f"/api/v1/jobs/{job['ref']}/parts/{line_id}/order", json={"supplier_id": supplier_id}, headers=auth
        )
        if response.status_code == 201:
            order = response.json()
            promised = order["lines"][0].get("promised_at") or datetime.now(UTC).isoformat()
            promised_s = int(datetime.fromisoformat(promised.replace("Z", "+00:00")).timestamp())
            return OrderSetup(order["id"], order["supplier_ref"], order["po"], promised_s)
        if response.status_code not in (429, 503):
            break
        time.sleep(1)
    raise BenchError(f"ordering from supplier {supplier_id}: {response.status_code} {response.text[:300]}")


@dataclass
class Setup:
    base: str
    sandbox: str
    branches: list[BranchSetup]
    suppliers: list[SupplierSetup]
    orders_placed: int


def _branch_ip(b: int) -> str:
    return f"127.0.0.{11 + b}"


def _chain(base: str, sandbox: str, args: argparse.Namespace) -> Setup:
    manager = _login(base, MANAGER)
    branches = [
        BranchSetup(
            b,
            f"s{b:02d}",
            _branch_ip(b),
            _login(base, f"desk.s{b:02d}", _branch_ip(b)),
            _login(base, f"tech.s{b:02d}", _branch_ip(b)),
        )
        for b in range(args.branches)
    ]
    made = _suppliers(base, sandbox, manager)
    suppliers = []
    with httpx.Client(base_url=base, timeout=60) as client:
        for n, (supplier_id, secret) in enumerate(made):
            b = branches[n % len(branches)]
            orders = tuple(_place(client, b.desk_token, b.tech_token, supplier_id) for _ in range(args.orders))
            suppliers.append(SupplierSetup(supplier_id, secret, orders))
    return Setup(base, sandbox, branches, suppliers, len(made) * args.orders)


def _start_services(args: argparse.Namespace, procs: Processes, out_dir: Path) -> tuple[str, str, dict[int, str]]:
    """The sandbox, the API and the worker, on a freshly migrated database with the chain's staff; returns
    the API's and the sandbox's URLs and each server's session id (its CPU group)."""
    sandbox_port, api_port = _free_port(), _free_port()
    sandbox, base = f"http://127.0.0.1:{sandbox_port}", f"http://127.0.0.1:{api_port}"
    env = server_env(
        args.database_url,
        ATELIER_REDIS_URL=args.redis_url,
        ATELIER_ALLOW_PRIVATE_SUPPLIER_URLS="true",
        ATELIER_SMS_GATEWAY_URL=f"{sandbox}/t/sms",
        ATELIER_SMS_GATEWAY_KEY="bench-sms-key",
        ATELIER_PUBLIC_BASE_URL=base,
    )
    _atelier(env, "db", "upgrade")
    asyncio.run(_staff(args.database_url, args.branches, args.timezone))
    cmd = _atelier_command()
    box = procs.start(
        "sandbox", [*cmd, "sandbox", "supplier", "--port", str(sandbox_port)], env, out_dir / "sandbox.log"
    )
    api_env = {**env, "ATELIER_LOG_LEVEL": "INFO"} if args.access_log else env  # INFO: a line per request
    api = procs.start(
        "atelier serve",
        [*cmd, "serve", "--workers", str(args.api_workers), "--port", str(api_port)],
        api_env,
        out_dir / "atelier-serve.log",
    )
    worker = procs.start("atelier worker", [*cmd, "worker"], env, out_dir / "atelier-worker.log")
    _wait_ready(box, f"{sandbox}/_sandbox/faults")
    _wait_ready(api, f"{base}/health/ready")
    sessions = {box.proc.pid: "sandbox", api.proc.pid: "api", worker.proc.pid: "worker"}  # each its own session
    return base, sandbox, sessions


# --- the load processes and the customers' SMS -----------------------------------------------------------


@dataclass
class Fleet:
    """The load processes: their queues, and which one owns each branch (a code goes to its owner)."""

    inboxes: list[Any]
    results: Any
    processes: list[Any]
    owner: dict[int, int]

    def send(self, message: tuple[Any, ...]) -> None:
        for inbox in self.inboxes:
            inbox.put(message)

    async def replies(self, wait_s: float) -> list[StepResult]:
        loop = asyncio.get_running_loop()
        got: list[StepResult] = []
        while len(got) < len(self.processes):
            try:
                reply = await loop.run_in_executor(None, self.results.get, True, wait_s)
            except queue.Empty as exc:
                raise BenchError(f"a load process did not report within {wait_s:.0f} s") from exc
            if isinstance(reply, tuple) and reply[0] == "failed":
                raise BenchError(f"load process {reply[1]} failed: {reply[2]}")
            got.append(reply)
        return got

    def stop(self) -> None:
        self.send(("stop",))
        for process in self.processes:
            process.join(timeout=10)
            if process.is_alive():
                process.terminate()


def _fleet(setup: Setup, args: argparse.Namespace) -> Fleet:
    ctx = multiprocessing.get_context("spawn")
    results = ctx.Queue()
    inboxes, processes, owner = [], [], {}
    for p in range(args.clients):
        mine = tuple(b for b in setup.branches if b.index % args.clients == p)
        config = GeneratorConfig(
            p,
            setup.base,
            mine,
            len(setup.branches),
            tuple(s for n, s in enumerate(setup.suppliers) if n % args.clients == p),
            len(setup.suppliers),
            args.timeout,
            args.seed * 1000 + p,
        )
        inbox = ctx.Queue()
        process = ctx.Process(target=run, args=(config, inbox, results), daemon=True, name=f"surge-load-{p}")
        process.start()
        inboxes.append(inbox)
        processes.append(process)
        owner.update({b.index: p for b in mine})
    return Fleet(inboxes, results, processes, owner)


async def _read_sms(sandbox: str, fleet: Fleet, stop: asyncio.Event) -> None:
    """The customers' phones: every pickup code the gateway received goes to the process owning the job's
    branch (the number's 4th-5th digits after +33 6 are the branch)."""
    seen = 0
    async with httpx.AsyncClient(timeout=30) as client:
        while not stop.is_set():
            try:
                items = (await client.get(f"{sandbox}/t/sms/_sandbox/sms")).json()["items"]
            except (httpx.HTTPError, ValueError, KeyError):
                items = []
            for item in items[seen:]:
                code, to = parse_code(item["body"]), item["to"]
                if code and to.startswith("+336") and int(to[4:6]) in fleet.owner:
                    at = datetime.fromisoformat(item["at"]).timestamp()
                    fleet.inboxes[fleet.owner[int(to[4:6])]].put(("code", "0" + to[3:], code, at))
            seen = max(seen, len(items))
            try:
                await asyncio.wait_for(stop.wait(), 0.5)
            except TimeoutError:
                pass


# --- a step ----------------------------------------------------------------------------------------------


@dataclass
class Run:
    """What every step needs: the options, the load processes, what was answered so far, the logs."""

    args: argparse.Namespace
    fleet: Fleet
    history: History
    logs: LogTail
    sessions: dict[int, str]  # the servers' session ids -> their CPU group

    @property
    def dsn(self) -> str:
        return str(_asyncpg_dsn(self.args.database_url))

    def cpu(self) -> CpuSample:
        database = urlsplit(self.args.database_url).path.lstrip("/")
        pids = {os.getpid(): "bench (checks, SMS)", **dict.fromkeys((p.pid for p in self.fleet.processes), "load")}
        return cpu_sample(self.sessions, pids, database, time.monotonic())


async def _drain(dsn: str, max_s: float) -> float | None:
    """Seconds until the outbox holds nothing due (None: not within max_s)."""
    start = time.monotonic()
    while time.monotonic() - start < max_s:
        pending, _ = await backlog(dsn)
        if pending == 0:
            return time.monotonic() - start
        await asyncio.sleep(0.5)
    return None


async def _step(run: Run, name: str, multiplier: float, seconds: float) -> StepReport:
    """One step: the load processes start together, the outbox is sampled meanwhile; once every answer is in,
    the outbox's lag over the step and the database check, then the wait for the outbox to empty."""
    args, load_1m = run.args, os.getloadavg()[0]
    start_at = time.time() + 0.5
    sample, stop = OutboxSample(), asyncio.Event()
    sampler = asyncio.create_task(sample_outbox(run.dsn, sample, stop))
    before = run.cpu()
    run.fleet.send(("step", StepOrder(name, args.base_rate, multiplier, start_at, seconds)))
    results = await run.fleet.replies(seconds + args.timeout * 4 + 300)
    cpu = cpu_split(before, run.cpu())
    stop.set()
    await sampler
    for result in results:
        run.history.add(result.ledger)
    elapsed = max(r.elapsed_s for r in results)
    window = (datetime.fromtimestamp(start_at, UTC), datetime.fromtimestamp(start_at + elapsed, UTC))
    lag = await outbox_lag(run.dsn, *window)
    consistency = await check(run.dsn, run.history)
    drain = await _drain(run.dsn, args.drain_seconds)
    logs = run.logs.read()
    report = StepReport(
        name, multiplier, args.base_rate, seconds, results, lag, sample, drain, consistency, logs, cpu, load_1m
    )
    report.ops = op_figures(results, seconds, elapsed, logs.app_ms)
    kinds = await outbox_kinds(run.dsn, [i for _, i, _ in logs.tasks if i is not None])
    report.tasks = task_figures(logs.tasks, kinds)
    return report


# --- the run ---------------------------------------------------------------------------------------------


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="bench/surge.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add = parser.add_argument
    add("--base-rate", type=float, default=40.0, help="chain-wide requests/s at 1x (default 40)")
    add("--step-seconds", type=float, default=60.0, help="seconds of load per step (default 60)")
    add("--multipliers", default="1,3,10", help="the steps, comma-separated multipliers (default 1,3,10)")
    add("--warmup", type=float, default=10.0, help="seconds at 1x before the steps, not judged (default 10)")
    add("--branches", type=int, default=20, help="shops of the chain (default 20, at most 90)")
    add("--clients", type=int, default=2, help="load processes (default 2)")
    add("--api-workers", type=int, default=2, help="`atelier serve --workers` (default 2)")
    add("--orders", type=int, default=4, help="supplier orders placed per supplier at setup (default 4)")
    add("--seed-ready", type=int, default=5, help="jobs a branch waiting for pickup at the start (default 5)")
    add("--seed-backlog", type=int, default=5, help="jobs a branch received at the start (default 5)")
    add("--timeout", type=float, default=15.0, help="client timeout per request, s (default 15)")
    add("--drain-seconds", type=float, default=90.0, help="longest wait for the outbox to empty after a step")
    add("--seed", type=int, default=None, help="random seed (default: random)")
    add("--access-log", action="store_true", help="the API logs each request (INFO): adds the in-app p99 column")
    add("--database-url", default=os.environ.get("ATELIER_SURGE_DATABASE_URL", DEFAULT_DB))
    add("--redis-url", default=os.environ.get("ATELIER_SURGE_REDIS_URL", DEFAULT_REDIS))
    args = parser.parse_args(argv)
    try:
        args.steps = [float(m) for m in args.multipliers.split(",") if m.strip()]
    except ValueError:
        parser.error("--multipliers: numbers separated by commas")
    if not args.steps or min(args.steps) <= 0 or not 1 <= args.branches <= 90 or args.clients < 1:
        parser.error("--multipliers must be positive, --branches 1 to 90, --clients at least 1")
    if not args.database_url.startswith("postgresql+asyncpg://"):
        parser.error("--database-url must be postgresql+asyncpg://...")
    args.seed = args.seed if args.seed is not None else random.randrange(1 << 30)
    args.timezone = _branch_timezone()
    return args


async def _seed(run: Run, sandbox: str) -> None:
    args = run.args
    print(f"seeding   {args.seed_ready} jobs a branch to ready_for_pickup, {args.seed_backlog} received", flush=True)
    run.fleet.send(("seed", args.seed_ready, args.seed_backlog))
    for result in await run.fleet.replies(600):
        run.history.add(result.ledger)
    await _drain(run.dsn, args.drain_seconds)
    run.logs.read()


async def _run_steps(run: Run, sandbox: str) -> list[StepReport]:
    """Seeding, the warm-up and the steps, with the customers' phones read all along."""
    stop = asyncio.Event()
    reader = asyncio.create_task(_read_sms(sandbox, run.fleet, stop))
    try:
        await _seed(run, sandbox)
        args = run.args
        steps = [("warm-up", 1.0, args.warmup)] if args.warmup > 0 else []
        steps += [(f"step {m:g}x", m, args.step_seconds) for m in args.steps]
        reports = []
        for name, multiplier, seconds in steps:
            print(f"running   {name}", flush=True)
            report = await _step(run, name, multiplier, seconds)
            print_step(report, args.drain_seconds)
            reports.append(report)
        return reports
    finally:
        stop.set()
        await reader


def _setup_summary(args: argparse.Namespace, out_dir: Path) -> dict[str, Any]:
    changed = _git("status", "--porcelain", "--", "service", "domain", "integrations", "workers")
    return {
        "base_rate": args.base_rate,
        "step_seconds": args.step_seconds,
        "multipliers": args.steps,
        "warmup_s": args.warmup,
        "branches": args.branches,
        "clients": args.clients,
        "api_workers": args.api_workers,
        "mix": MIX,
        "timeout_s": args.timeout,
        "seed": args.seed,
        "access_log": args.access_log,
        "cpus": os.cpu_count(),
        "commit": _git("rev-parse", "--short", "HEAD"),
        "uncommitted_changes": bool(changed),
        "results_dir": str(out_dir.relative_to(ROOT)),
    }


def _run(args: argparse.Namespace, procs: Processes) -> dict[str, Any]:
    out_dir = BENCH / "results" / time.strftime("surge-%Y%m%d-%H%M%S")
    out_dir.mkdir(parents=True, exist_ok=True)
    where = urlsplit(args.database_url)
    print(f"database  {where.hostname}:{where.port or 5432}{where.path} (reset); redis {args.redis_url} (flushed)")
    asyncio.run(_reset_database(args.database_url))
    _flush_redis(args.redis_url)
    base, sandbox, sessions = _start_services(args, procs, out_dir)
    print(
        f"servers   atelier :{urlsplit(base).port} ({args.api_workers} API processes) + 1 worker, sandbox "
        f":{urlsplit(sandbox).port}; branches in {args.timezone} (it is midday there)",
        flush=True,
    )
    setup = _chain(base, sandbox, args)
    print(
        f"chain     {len(setup.branches)} branches, {len(setup.suppliers)} suppliers with faults, "
        f"{setup.orders_placed} supplier orders placed through the API",
        flush=True,
    )
    logs = LogTail([out_dir / "atelier-serve.log", out_dir / "atelier-worker.log"])
    fleet = _fleet(setup, args)
    try:
        reports = asyncio.run(_run_steps(Run(args, fleet, History(), logs, sessions), sandbox))
    finally:
        fleet.stop()
    for managed in procs.items:
        if managed.proc.poll() is not None:
            print(f"WARNING: {managed.name} exited with {managed.proc.returncode}; log {managed.log_path}")
    verdict = targets(reports)
    print_targets(verdict)
    result = summary(reports, verdict, _setup_summary(args, out_dir))
    (out_dir / "results.json").write_text(json.dumps(result, indent=2, default=str) + "\n")
    print(f"details   {out_dir.relative_to(ROOT)}/")
    return result


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse_args(argv)
    code, summary = guarded("bench/surge.py", lambda procs: _run(args, procs))
    if summary is None:
        return code
    return 0 if summary["consistent"] else 1  # the targets are measurements; a failed check is a failure


if __name__ == "__main__":
    sys.exit(main())
