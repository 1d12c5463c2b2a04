"""API benchmark: Atelier on PostgreSQL next to reference servers measured in the same run.

    uv run python bench/api.py [--duration 10] [--warmup 3] [--connections 64] [--threads 2] [--workers 2]

Needs `wrk` (Debian: `apt-get install -y wrk`) and a PostgreSQL server. The database named by
`ATELIER_BENCH_DATABASE_URL` (default postgresql+asyncpg://postgres@127.0.0.1:5432/atelier_bench) is
created if missing and RESET (schema `public` dropped) on every run.

What it does:
1. migrates the database with `atelier db upgrade`, creates a branch, a front-desk and a technician user;
2. starts `atelier serve --workers N` and two reference servers with granian and the same N workers:
   a plain Litestar JSON endpoint (the framework's ceiling) and bare-asyncpg endpoints running the same
   SQL as intake and GET (the database's ceiling for that work; see bench/reference.py);
3. drives each operation with wrk (`-t2 -c64`, a warm-up, then --duration seconds), Lua scripts in
   bench/wrk/: intake, GET /jobs/{ref}, the job list, a transition (received <-> on_hold, If-Match),
   plain_json, bare_intake, bare_get;
4. prints a table, the ratios against the references and the targets (intake and GET at least 50% of
   their bare-asyncpg reference, p99 under 100 ms); the LAST line is one JSON object with every figure.

Logs, wrk output and results.json go to bench/results/<timestamp>/ (gitignored).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg  # type: ignore[import-untyped]
import httpx

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
WRK_SCRIPTS = BENCH / "wrk"
DEFAULT_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/atelier_bench"
BRANCH = "bench"
DESK, TECH = "bench.desk", "bench.tech"
PASSWORD = "bench-password-not-secret"  # the bench database is thrown away on every run
GET_JOBS = 200  # jobs GET cycles through (Atelier and bare read the same rows)

# The body of tests/api/helpers.py's intake_body(): a fixed valid IMEI (IMEIs are not unique).
INTAKE_BODY: dict[str, Any] = {
    "customer": {"name": "Camille Martin", "phone": "06 12 34 56 78", "email": "camille@example.org"},
    "device": {
        "brand": "Apple",
        "model": "iPhone 13",
        "imei": "352099000000014",
        "colour": "blue",
        "condition": "scratched frame",
        "accessories": ["case"],
    },
    "fault": {"category": "screen", "description": "cracked screen"},
    "tier": "standard",
}

TARGET_RATIO = 0.5
TARGET_P99_MS = 100.0
SERVICE_OPS = ("intake", "get", "list", "transition")


class BenchError(Exception):
    """A setup step failed: the message says which and why."""


# --- processes ---------------------------------------------------------------------------------------


@dataclass
class Managed:
    name: str
    proc: subprocess.Popen[bytes]
    log_path: Path
    log: IO[bytes]


@dataclass
class Processes:
    """Every server this run starts, each in its own session so the whole tree (uv, granian and its
    workers) is signalled together; `stop_all` runs on any exit."""

    items: list[Managed] = field(default_factory=list)

    def start(self, name: str, cmd: Sequence[str], env: dict[str, str], log_path: Path) -> Managed:
        log = log_path.open("wb")
        proc = subprocess.Popen(
            list(cmd), cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        managed = Managed(name, proc, log_path, log)
        self.items.append(managed)
        return managed

    def stop_all(self) -> None:
        for item in reversed(self.items):
            _signal_group(item.proc, signal.SIGTERM)
        deadline = time.monotonic() + 10
        for item in reversed(self.items):
            try:
                item.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _signal_group(item.proc, signal.SIGKILL)
                item.proc.wait(timeout=5)
            item.log.close()
        self.items.clear()


def _signal_group(proc: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    try:
        os.killpg(proc.pid, sig)  # the group this run created for the process (start_new_session)
    except ProcessLookupError:
        pass


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _wait_ready(server: Managed, url: str, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise BenchError(
                f"{server.name} exited with {server.proc.returncode}; log {server.log_path}:\n{_tail(server.log_path)}"
            )
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    raise BenchError(f"{server.name} not ready at {url} after {timeout:.0f}s; log {server.log_path}")


# --- database ------------------------------------------------------------------------------------------


def _asyncpg_dsn(url: str, database: str | None = None) -> str:
    parts = urlsplit(url)
    scheme = parts.scheme.split("+", 1)[0]
    if scheme not in ("postgresql", "postgres"):
        raise BenchError(f"ATELIER_BENCH_DATABASE_URL must be a PostgreSQL URL, not {url!r}")
    path = f"/{database}" if database is not None else parts.path
    return urlunsplit(("postgresql", parts.netloc, path, parts.query, ""))


async def _reset_database(url: str) -> None:
    name = urlsplit(url).path.lstrip("/")
    if not name:
        raise BenchError("ATELIER_BENCH_DATABASE_URL names no database")
    admin = await asyncpg.connect(_asyncpg_dsn(url, "postgres"))
    try:
        if not await admin.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
            quoted = '"' + name.replace('"', '""') + '"'
            await admin.execute(f"CREATE DATABASE {quoted}")
    finally:
        await admin.close()
    conn = await asyncpg.connect(_asyncpg_dsn(url))
    try:
        await conn.execute("DROP SCHEMA IF EXISTS public CASCADE; CREATE SCHEMA public")
    finally:
        await conn.close()


async def _fetch_one(url: str, query: str, *args: Any) -> Any:
    conn = await asyncpg.connect(_asyncpg_dsn(url))
    try:
        return await conn.fetchval(query, *args)
    finally:
        await conn.close()


def _atelier_command() -> list[str]:
    uv = shutil.which("uv")
    if uv:
        return [uv, "run", "atelier"]
    script = Path(sys.executable).parent / "atelier"  # already inside the project's environment
    if script.exists():
        return [str(script)]
    raise BenchError("neither `uv` nor the `atelier` script was found: run as `uv run python bench/api.py`")


def _atelier(env: dict[str, str], *args: str, stdin: str | None = None) -> None:
    result = subprocess.run(
        [*_atelier_command(), *args], cwd=ROOT, env=env, input=stdin, capture_output=True, text=True, timeout=300
    )
    if result.returncode != 0:
        raise BenchError(f"`atelier {' '.join(args)}` failed ({result.returncode}):\n{result.stdout}{result.stderr}")


def _prepare_database(url: str, env: dict[str, str]) -> int:
    asyncio.run(_reset_database(url))
    _atelier(env, "db", "upgrade")
    _atelier(env, "branch", "create", "--code", BRANCH, "--name", "Bench", "--hours", "mon-sun 00:00-23:59")
    _atelier(env, "user", "create", "--username", DESK, "--role", "front_desk", "--branch", BRANCH,
             "--password-stdin", stdin=PASSWORD + "\n")  # fmt: skip
    _atelier(env, "user", "create", "--username", TECH, "--role", "technician", "--branch", BRANCH,
             "--password-stdin", stdin=PASSWORD + "\n")  # fmt: skip
    branch_id: int = asyncio.run(_fetch_one(url, "SELECT id FROM branch WHERE code = $1", BRANCH))
    return branch_id


def _atelier_pool_size(env: dict[str, str]) -> int:
    """The most connections one Atelier process holds (pool_size + max_overflow, as its settings say):
    the bare reference gets as many per worker."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from service.settings import Settings

    fields = Settings.model_fields
    size = int(env.get("ATELIER_DB_POOL_SIZE", fields["db_pool_size"].default))
    overflow = int(env.get("ATELIER_DB_MAX_OVERFLOW", fields["db_max_overflow"].default))
    return size + overflow


# --- seeding through the API ----------------------------------------------------------------------------


def _token(base: str, username: str) -> str:
    response = httpx.post(f"{base}/api/v1/auth/token", json={"username": username, "password": PASSWORD}, timeout=30)
    if response.status_code != 200:
        raise BenchError(f"login as {username} failed: {response.status_code} {response.text}")
    token: str = response.json()["access_token"]
    return token


async def _create_jobs(base: str, token: str, count: int) -> list[dict[str, Any]]:
    limit = asyncio.Semaphore(16)
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=base, headers=headers, timeout=30) as client:

        async def one() -> dict[str, Any]:
            async with limit:
                response = await client.post("/api/v1/jobs", json=INTAKE_BODY)
            if response.status_code != 201:
                raise BenchError(f"intake while seeding: {response.status_code} {response.text}")
            job: dict[str, Any] = response.json()
            return job

        return list(await asyncio.gather(*(one() for _ in range(count))))


async def _settle(url: str, max_wait: float = 20.0) -> None:
    """Waits for the requests wrk left in flight (it stops without waiting for answers) to finish: no
    backend of the bench database busy in a query or a transaction, twice in a row. Otherwise they would
    load the next measurement, and the transition jobs' versions would be read before their last move."""
    name = urlsplit(url).path.lstrip("/")
    query = (
        "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid() "
        "AND state IN ('active', 'idle in transaction', 'idle in transaction (aborted)')"
    )
    conn = await asyncpg.connect(_asyncpg_dsn(url))
    try:
        deadline, quiet = time.monotonic() + max_wait, 0
        while quiet < 2 and time.monotonic() < deadline:
            await asyncio.sleep(0.25)
            quiet = quiet + 1 if await conn.fetchval(query, name) == 0 else 0
        # Statistics as autovacuum would have them in steady state: the intake runs grow repair_job from a
        # few hundred rows to tens of thousands within a minute, and with the stale estimate the job list
        # sorts every row of the branch (25 ms) instead of reading 21 entries of its index (0.1 ms).
        await conn.execute("ANALYZE")
    finally:
        await conn.close()
    await asyncio.sleep(0.5)  # and the servers' last responses, written after their transactions


def _job_states_writer(url: str, refs: list[str], path: Path) -> Callable[[], None]:
    """Writes "ref version stage" for the jobs transition.lua moves, read from the database right before
    each wrk run: the warm-up has moved them on, and a stale If-Match would be a 412, not a move."""
    ids = [int(ref.rsplit("-", 1)[1]) for ref in refs]

    async def states() -> list[asyncpg.Record]:
        conn = await asyncpg.connect(_asyncpg_dsn(url))
        try:
            query = "SELECT id, version, stage FROM repair_job WHERE id = ANY($1::int[]) ORDER BY id"
            return list(await conn.fetch(query, ids))
        finally:
            await conn.close()

    def write() -> None:
        rows = asyncio.run(states())
        path.write_text("".join(f"AT-{r['id']:06d} {r['version']} {r['stage']}\n" for r in rows))

    return write


# --- wrk ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Operation:
    name: str
    url: str
    script: str
    script_args: tuple[str, ...] = ()
    headers: tuple[str, ...] = ()
    before: Callable[[], None] | None = None  # runs before each wrk run (warm-up and measured)


@dataclass
class Result:
    name: str
    rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float
    max_ms: float
    requests: int
    non2xx: int
    socket_errors: int
    raw: dict[str, Any]

    @property
    def errors(self) -> int:
        return self.non2xx + self.socket_errors

    def as_json(self) -> dict[str, Any]:
        return {
            "rps": round(self.rps, 1),
            "p50_ms": round(self.p50_ms, 3),
            "p90_ms": round(self.p90_ms, 3),
            "p99_ms": round(self.p99_ms, 3),
            "mean_ms": round(self.mean_ms, 3),
            "max_ms": round(self.max_ms, 3),
            "requests": self.requests,
            "non2xx": self.non2xx,
            "socket_errors": self.socket_errors,
            **({"refreshes": self.raw["refreshes"]} if self.raw.get("refreshes") else {}),
        }


def _wrk(op: Operation, seconds: float, args: argparse.Namespace, out_dir: Path, tag: str) -> Result:
    cmd = [
        "wrk", f"-t{args.threads}", f"-c{args.connections}", f"-d{max(1, round(seconds))}s", "--timeout", "5s",
        *(f"-H{h}" for h in op.headers),
        "-s", str(WRK_SCRIPTS / op.script), op.url, "--", *op.script_args,
    ]  # fmt: skip
    if op.before is not None:
        op.before()
    env = {**os.environ, "LUA_PATH": f"{WRK_SCRIPTS}/?.lua;;"}
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=seconds + 60)
    asyncio.run(_settle(args.database_url))
    (out_dir / f"wrk-{op.name}-{tag}.txt").write_text(proc.stdout + proc.stderr)
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("BENCH_RESULT ")), None)
    if proc.returncode != 0 or line is None:
        raise BenchError(f"wrk failed for {op.name} ({proc.returncode}):\n{proc.stdout}{proc.stderr}")
    raw: dict[str, Any] = json.loads(line.removeprefix("BENCH_RESULT "))
    errors = raw["errors"]
    # wrk counts responses with a status above 399 as `status` errors; transition.lua counts every
    # non-2xx itself (it sees each response), the larger of the two is the honest figure.
    non2xx = max(errors["status"], raw["non2xx"])
    return Result(
        name=op.name,
        rps=raw["requests"] / (raw["duration_us"] / 1e6),
        p50_ms=raw["p50_us"] / 1000,
        p90_ms=raw["p90_us"] / 1000,
        p99_ms=raw["p99_us"] / 1000,
        mean_ms=raw["mean_us"] / 1000,
        max_ms=raw["max_us"] / 1000,
        requests=raw["requests"],
        non2xx=non2xx,
        socket_errors=errors["connect"] + errors["read"] + errors["write"] + errors["timeout"],
        raw=raw,
    )


# --- report -----------------------------------------------------------------------------------------------


def _git(*args: str) -> str:
    try:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def _mark(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def _report(results: dict[str, Result], args: argparse.Namespace, meta: dict[str, Any]) -> dict[str, Any]:
    print()
    print(f"{'operation':<14}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}{'errors':>9}")
    print("-" * 53)
    for r in results.values():
        print(f"{r.name:<14}{r.rps:>10.1f}{r.p50_ms:>10.2f}{r.p99_ms:>10.2f}{r.errors:>9}")
    print()

    ratios: dict[str, float] = {}
    for ours, ref in (("intake", "bare_intake"), ("get", "bare_get"), ("get", "plain_json")):
        if ours in results and ref in results and results[ref].rps > 0:
            ratios[f"{ours}/{ref}"] = round(results[ours].rps / results[ref].rps, 3)
    targets: dict[str, bool] = {}
    for key in ("intake/bare_intake", "get/bare_get"):
        if key in ratios:
            targets[f"{key} >= {TARGET_RATIO}"] = ratios[key] >= TARGET_RATIO
            print(f"{key:<22} = {ratios[key]:.3f}   (target >= {TARGET_RATIO})   {_mark(ratios[key] >= TARGET_RATIO)}")
    if "get/plain_json" in ratios:
        print(f"{'get/plain_json':<22} = {ratios['get/plain_json']:.3f}   (framework ceiling, for scale)")
    for name in SERVICE_OPS:
        if name in results:
            r = results[name]
            ok = r.p99_ms < TARGET_P99_MS
            targets[f"{name} p99 < {TARGET_P99_MS:g} ms"] = ok
            print(f"{name + ' p99':<22} = {r.p99_ms:.2f} ms   (target < {TARGET_P99_MS:g} ms)   {_mark(ok)}")
    for name in SERVICE_OPS:
        if name in results:
            ok = results[name].errors == 0
            targets[f"{name} without errors"] = ok
            if not ok:
                print(f"{name + ' errors':<22} = {results[name].errors}   FAIL")
    all_pass = all(targets.values()) if targets else False
    print(f"targets: {'ALL PASS' if all_pass else 'NOT MET'}")
    return {
        "bench": "api",
        "operations": {name: r.as_json() for name, r in results.items()},
        "ratios": ratios,
        "targets": targets,
        "pass": all_pass,
        "setup": {
            "duration_s": args.duration,
            "warmup_s": args.warmup,
            "threads": args.threads,
            "connections": args.connections,
            "workers": args.workers,
            **meta,
        },
    }


# --- the run ----------------------------------------------------------------------------------------------


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="bench/api.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of load per operation (default 10)")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds of warm-up per operation, 0 for none")
    parser.add_argument("--connections", type=int, default=64, help="wrk connections (default 64)")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads (default 2)")
    parser.add_argument("--workers", type=int, default=2, help="server worker processes, for every server")
    parser.add_argument(
        "--only", default="", help="comma-separated operations to run (default: all), e.g. intake,bare_intake"
    )
    args = parser.parse_args(argv)
    if args.connections < args.threads:
        parser.error("--connections must be at least --threads")
    return args


def _run(args: argparse.Namespace, procs: Processes) -> dict[str, Any]:
    if shutil.which("wrk") is None:
        raise BenchError("wrk is not installed: `apt-get install -y wrk` (Debian/Ubuntu), then run again")
    url = args.database_url = os.environ.get("ATELIER_BENCH_DATABASE_URL", DEFAULT_URL)
    if not url.startswith("postgresql+asyncpg://"):
        raise BenchError(f"ATELIER_BENCH_DATABASE_URL must be postgresql+asyncpg://..., not {url!r}")
    out_dir = BENCH / "results" / time.strftime("%Y%m%d-%H%M%S")
    out_dir.mkdir(parents=True, exist_ok=True)

    env = server_env(url)

    where = urlsplit(url)
    print(f"database  {where.hostname}:{where.port or 5432}{where.path} (reset)", flush=True)
    branch_id = _prepare_database(url, env)

    ports = {"atelier": _free_port(), "plain": _free_port(), "bare": _free_port()}
    atelier = procs.start(
        "atelier serve",
        [*_atelier_command(), "serve", "--workers", str(args.workers), "--port", str(ports["atelier"])],
        env,
        out_dir / "atelier-serve.log",
    )
    pool_size = _atelier_pool_size(env)
    ref_env = {
        **env,
        "BENCH_PG_DSN": _asyncpg_dsn(url),
        "BENCH_BRANCH_ID": str(branch_id),
        "BENCH_ACTOR": DESK,
        "BENCH_POOL_SIZE": str(pool_size),
    }
    ref_cmd = [sys.executable, "-m", "bench.reference"]
    plain = procs.start(
        "plain reference",
        [*ref_cmd, "plain", "--port", str(ports["plain"]), "--workers", str(args.workers)],
        ref_env,
        out_dir / "reference-plain.log",
    )
    bare = procs.start(
        "bare-asyncpg reference",
        [*ref_cmd, "bare", "--port", str(ports["bare"]), "--workers", str(args.workers)],
        ref_env,
        out_dir / "reference-bare.log",
    )
    base = f"http://127.0.0.1:{ports['atelier']}"
    plain_base, bare_base = f"http://127.0.0.1:{ports['plain']}", f"http://127.0.0.1:{ports['bare']}"
    _wait_ready(atelier, f"{base}/health/ready")
    _wait_ready(plain, f"{plain_base}/plain")
    _wait_ready(bare, f"{bare_base}/bare/ready")
    print(f"servers   atelier :{ports['atelier']}, plain :{ports['plain']}, bare :{ports['bare']}", flush=True)

    desk_token, tech_token = _token(base, DESK), _token(base, TECH)
    per_thread = -(-args.connections // args.threads)
    transition_count = 2 * per_thread * args.threads  # twice the connections: always a free job per thread
    print(f"seeding   {GET_JOBS} jobs to read, {transition_count} to move", flush=True)
    get_jobs = asyncio.run(_create_jobs(base, desk_token, GET_JOBS))
    move_jobs = asyncio.run(_create_jobs(base, desk_token, transition_count))
    body_file = out_dir / "intake.json"
    body_file.write_text(json.dumps(INTAKE_BODY))
    refs_file = out_dir / "refs.txt"
    refs_file.write_text("".join(f"{j['ref']}\n" for j in get_jobs))
    moves_file = out_dir / "transition-jobs.txt"
    write_moves = _job_states_writer(url, [j["ref"] for j in move_jobs], moves_file)

    desk = (f"Authorization: Bearer {desk_token}",)
    tech = (f"Authorization: Bearer {tech_token}",)
    operations = [
        Operation("plain_json", f"{plain_base}/plain", "report.lua"),
        Operation("bare_intake", bare_base, "post.lua", (str(body_file), "/bare/jobs")),
        Operation("intake", base, "post.lua", (str(body_file), "/api/v1/jobs"), desk),
        Operation("bare_get", bare_base, "get_refs.lua", (str(refs_file), "/bare/jobs/")),
        Operation("get", base, "get_refs.lua", (str(refs_file), "/api/v1/jobs/"), desk),
        Operation("list", f"{base}/api/v1/jobs?limit=20", "report.lua", (), desk),
        Operation("transition", base, "transition.lua", (str(moves_file), str(args.threads)), tech, write_moves),
    ]
    wanted = {name.strip() for name in args.only.split(",") if name.strip()}
    unknown = wanted - {op.name for op in operations}
    if unknown:
        raise BenchError(f"unknown operation(s) for --only: {', '.join(sorted(unknown))}")

    results: dict[str, Result] = {}
    load: dict[str, float] = {}  # 1-minute load average as each operation starts (the machine is shared)
    for op in operations:
        if wanted and op.name not in wanted:
            continue
        load[op.name] = round(os.getloadavg()[0], 2)
        print(f"running   {op.name:<12}", end="", flush=True)
        if args.warmup > 0:
            _wrk(op, args.warmup, args, out_dir, "warmup")
        result = _wrk(op, args.duration, args, out_dir, "run")
        results[op.name] = result
        print(f" {result.rps:9.1f} req/s  p99 {result.p99_ms:7.2f} ms  errors {result.errors}", flush=True)
        for managed in procs.items:
            if managed.proc.poll() is not None:
                raise BenchError(f"{managed.name} died during {op.name}; log {managed.log_path}")

    meta = {
        "wrk": subprocess.run(["wrk", "-v"], capture_output=True, text=True).stdout.split("\n")[0].strip(),
        "cpus": os.cpu_count(),
        "commit": _git("rev-parse", "--short", "HEAD"),
        "uncommitted_changes": bool(_git("status", "--porcelain", "--", "service", "domain")),
        "db_pool_per_worker": pool_size,
        "loadavg_1m_at_start": load,
        "results_dir": str(out_dir.relative_to(ROOT)),
    }
    summary = _report(results, args, meta)
    (out_dir / "results.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(f"details   {out_dir.relative_to(ROOT)}/")
    return summary


def server_env(url: str, **extra: str) -> dict[str, str]:
    """The environment of an Atelier process under benchmark: this machine's, minus any ATELIER_*
    setting of the caller's (fresh keys, quiet JSON logs), plus the pool sizes if the caller set them."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ATELIER_")}
    env.update(
        ATELIER_DATABASE_URL=url,
        ATELIER_JWT_SECRET=secrets.token_urlsafe(48),
        ATELIER_PASSCODE_KEYS=base64.urlsafe_b64encode(os.urandom(32)).decode(),  # a Fernet key
        ATELIER_LOG_LEVEL="WARNING",
        ATELIER_LOG_FORMAT="json",
        **extra,
    )
    for passthrough in ("ATELIER_DB_POOL_SIZE", "ATELIER_DB_MAX_OVERFLOW"):
        if passthrough in os.environ:
            env[passthrough] = os.environ[passthrough]
    return env


def guarded(name: str, run: Callable[[Processes], dict[str, Any]]) -> tuple[int, dict[str, Any] | None]:
    """Run a benchmark so that every server it started is stopped, however it ends; prints the summary
    as the last line (one JSON object). Returns the exit code and the summary."""
    procs = Processes()

    def terminate(signum: int, _frame: Any) -> None:
        print(f"\nstopping on {signal.Signals(signum).name}", file=sys.stderr)
        raise SystemExit(128 + signum)  # unwinds through `finally`, which stops every server

    signal.signal(signal.SIGTERM, terminate)
    signal.signal(signal.SIGHUP, terminate)
    # Ctrl-C raises KeyboardInterrupt even when started in the background of a script (SIGINT ignored).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        summary = run(procs)
    except BenchError as exc:
        print(f"\n{name}: {exc}", file=sys.stderr)
        return 2, None
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130, None
    finally:
        procs.stop_all()
    print(json.dumps(summary, separators=(",", ":")))
    return 0, summary


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse_args(argv)
    code, _ = guarded("bench/api.py", lambda procs: _run(args, procs))
    return code  # a measurement, not a gate: whether the targets are met is in the table and the JSON


if __name__ == "__main__":
    sys.exit(main())
