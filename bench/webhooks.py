"""Webhook benchmark: signed Standard Webhooks `stock.changed` pushes at a running Atelier, then a check of
the database (zero lost, zero doubly applied, the newest fact per SKU kept).

    uv run python bench/webhooks.py [--duration 15] [--warmup 3] [--connections 64] [--threads 2] [--workers 2]

Needs `wrk` (Debian: `apt-get install -y wrk`) and a PostgreSQL server. The database named by
`ATELIER_BENCH_DATABASE_URL` (default postgresql+asyncpg://postgres@127.0.0.1:5432/atelier_bench) is
created if missing and RESET (schema `public` dropped) on every run.

What it does:
1. migrates the database, creates a chain-wide manager, starts `atelier serve --workers N` (with
   ATELIER_ALLOW_PRIVATE_SUPPLIER_URLS=true and freshly generated keys) and creates two suppliers through
   the API, each with a `whsec_` secret: one for the warm-up, one for the measured run;
2. plans the deliveries: `stock.changed` events over --skus SKUs, each with a unique webhook-id; a share
   (--stale) carries a fact older than one already sent for its SKU (out of order); a share (--redeliver)
   is delivered twice with the same webhook-id and body (right after the first, racing it, or later);
   a share (--bad) has a signature that does not match its body (must be 401 with nothing written);
3. signs them right before each wrk run (webhook-timestamp = now: a run must fit in the ±5 min tolerance,
   hence --duration at most 240 s) into one file per wrk thread; wrk (bench/wrk/webhooks.lua, -t2 -c64 by
   default) sends each line once, in order, and logs every answer; deliveries wrk left unanswered (in
   flight when it stopped) are then delivered again, freshly signed, as a supplier retries, so that every
   delivery sent has an answer;
4. prints accepted events/s (2xx answers a second in the measured window), p50/p99, the per-second
   spread, where the CPU went while wrk ran (server, PostgreSQL backends of the bench database, wrk,
   other processes: the machine is shared), status and outcome counts, then CHECKS THE DATABASE: the
   supplier's webhook_event rows are exactly the webhook-ids that were accepted (none lost, none from a
   bad signature), no webhook-id was answered `applied` twice, and each SKU's supplier_stock row holds
   its newest fact (by the event's timestamp). The LAST line is one JSON object with every figure. The
   exit status is 1 when a database check fails (throughput below target is reported, not an error).

Deliveries, wrk output, answer logs and results.json go to bench/results/webhooks-<timestamp>/ (gitignored).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import resource
import secrets
import shutil
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import asyncpg  # type: ignore[import-untyped]
import httpx

from bench.api import (
    DEFAULT_URL,
    ROOT,
    WRK_SCRIPTS,
    BenchError,
    Processes,
    _asyncpg_dsn,
    _atelier,
    _atelier_command,
    _free_port,
    _git,
    _reset_database,
    _settle,
    _wait_ready,
    guarded,
    server_env,
)
from bench.procstat import machine_busy, processes
from integrations.webhooks import new_secret, sign

BENCH = ROOT / "bench"
MANAGER = "bench.manager"
PASSWORD = "bench-password-not-secret"  # the bench database is thrown away on every run
TARGET_EPS = 1000.0
MAX_DURATION = 240.0  # signed at the start of a run; the server accepts timestamps up to 300 s old
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


# --- the deliveries --------------------------------------------------------------------------------------


@dataclass(slots=True)
class Delivery:
    idx: int  # position in the file: line idx goes to wrk thread idx % threads
    webhook_id: str
    kind: str  # "first", "redelivery" (same id and body as a first) or "bad" (signature does not match)
    sku: str
    available: int
    fact_us: int  # the event's own timestamp (when the supplier says it was true), µs since the epoch
    body: bytes
    stale: bool = False  # a fact older than one already in the file before it, for the same SKU


def _iso(us: int) -> str:
    return (EPOCH + timedelta(microseconds=us)).isoformat()


def _body(sku: str, available: int, price: int, fact_us: int, eta_us: int | None) -> bytes:
    event = {
        "type": "stock.changed",
        "timestamp": _iso(fact_us),
        "data": {
            "sku": sku,
            "available": available,
            "price_cents": price,
            "currency": "EUR",
            "eta": _iso(eta_us) if eta_us is not None else None,
        },
    }
    return json.dumps(event, separators=(",", ":")).encode()


def plan(count: int, args: argparse.Namespace, rng: random.Random, tag: str) -> list[Delivery]:
    """About `count` deliveries in sending order (firsts, redeliveries and bad ones mixed in)."""
    n_first = max(1, round(count / (1 + args.redeliver + args.bad)))
    base_us = (int(time.time()) - 86_400) * 1_000_000  # facts from yesterday, a millisecond apart
    newest: dict[int, int] = {}
    used: dict[int, set[int]] = {}
    firsts: list[Delivery] = []
    for k in range(n_first):
        s = rng.randrange(args.skus)
        fact = base_us + k * 1000
        stale = s in newest and rng.random() < args.stale
        if stale:  # older than the newest fact of this SKU already in the file: must not win
            while True:
                fact = newest[s] - rng.randint(1, 5000) * 1000 + rng.randint(1, 999)
                if fact not in used.setdefault(s, set()):
                    break
        else:
            newest[s] = fact
        used.setdefault(s, set()).add(fact)
        available = rng.randrange(0, 1000)
        eta = fact + rng.randint(1, 14) * 86_400_000_000 if available == 0 or rng.random() < 0.2 else None
        sku = f"BW-{s:05d}"
        body = _body(sku, available, rng.randrange(100, 50_000), fact, eta)
        firsts.append(Delivery(0, f"msg_{tag}{k:08d}", "first", sku, available, fact, body, stale))

    after: dict[int, list[Delivery]] = {}  # position in `firsts` -> deliveries to send right after it
    for k in rng.sample(range(n_first), min(n_first, round(n_first * args.redeliver))):
        original = firsts[k]
        # Half right behind the first delivery (in flight at the same time, racing it), half later.
        gap = rng.randint(0, 2) if rng.random() < 0.5 else rng.randint(20, 2000)
        copy = Delivery(0, original.webhook_id, "redelivery", original.sku, original.available, original.fact_us,
                        original.body)  # fmt: skip
        after.setdefault(min(n_first - 1, k + gap), []).append(copy)
    for b in range(round(n_first * args.bad)):
        s = rng.randrange(args.skus)
        fact = base_us + rng.randrange(n_first) * 1000 + 500  # never applied, so never a tie that matters
        sku = f"BW-{s:05d}"
        bad = Delivery(0, f"msg_{tag}bad{b:07d}", "bad", sku, 999_999, fact, _body(sku, 999_999, 1, fact, None))
        after.setdefault(rng.randrange(n_first), []).append(bad)

    out: list[Delivery] = []
    for k, first in enumerate(firsts):
        out.append(first)
        out.extend(after.get(k, ()))
    for idx, delivery in enumerate(out):
        delivery.idx = idx
    return out


def _signature(secret: str, d: Delivery, timestamp: int) -> str:
    if d.kind == "bad":  # signed over another body: what a tampered payload looks like
        return sign(secret, d.webhook_id, timestamp, d.body.replace(b'"available":999999', b'"available":1'))
    return sign(secret, d.webhook_id, timestamp, d.body)


def write_signed(deliveries: Sequence[Delivery], secret: str, prefix: Path, threads: int) -> int:
    """Signs every delivery with webhook-timestamp = now (a redelivery one second later, as a retry
    would be) and writes wrk's files, one a thread (delivery idx goes to thread idx % threads); returns
    the timestamp."""
    now = int(time.time())
    files = [Path(f"{prefix}-{t}.tsv").open("w") for t in range(threads)]
    try:
        for d in deliveries:
            ts = now + 1 if d.kind == "redelivery" else now
            line = f"{d.idx}\t{d.webhook_id}\t{ts}\t{_signature(secret, d, ts)}\t{d.body.decode()}\n"
            files[d.idx % threads].write(line)
    finally:
        for f in files:
            f.close()
    return now


# --- where the CPU went: /proc, sampled around each wrk run ---------------------------------------------


@dataclass
class CpuSample:
    wall: float
    by_pid: dict[int, tuple[str, float]]  # pid -> (group, CPU seconds so far)
    machine_busy: float  # CPU seconds, all cores, since boot
    children: float  # this process's waited-for children (wrk)


def _group(pid_session: int, cmdline: str, server_session: int, database: str) -> str | None:
    if pid_session == server_session:
        return "server"  # uv, granian and its workers: the whole session the bench started
    if cmdline.startswith("postgres: "):
        return "pg_bench" if f" {database} " in cmdline else "pg_other"  # our backends / the rest of postgres
    return None


def cpu_sample(server_session: int, database: str) -> CpuSample:
    by_pid: dict[int, tuple[str, float]] = {}
    for proc in processes():
        group = _group(proc.session, proc.cmdline, server_session, database)
        if group is not None:
            by_pid[proc.pid] = (group, proc.seconds)
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return CpuSample(time.monotonic(), by_pid, machine_busy(), usage.ru_utime + usage.ru_stime)


def cpu_split(before: CpuSample, after: CpuSample) -> dict[str, float]:
    """CPU seconds used between the samples: the server, our database's backends, the rest of postgres
    (its background writers, and other databases' backends), wrk, and everything else on the machine."""
    used = {"server": 0.0, "pg_bench": 0.0, "pg_other": 0.0}
    for pid, (group, seconds) in after.by_pid.items():
        used[group] += seconds - before.by_pid.get(pid, (group, 0.0))[1]
    used["wrk"] = after.children - before.children
    busy = after.machine_busy - before.machine_busy
    used["other_processes"] = max(0.0, busy - sum(used.values()))
    used["machine_busy"] = busy
    used["wall"] = after.wall - before.wall
    return {k: round(v, 3) for k, v in used.items()}


# --- one phase: a wrk run against one supplier, the redelivery of what it left unanswered ---------------


@dataclass
class Phase:
    name: str
    supplier_id: int
    secret: str
    deliveries: list[Delivery]
    raw: dict[str, Any] = field(default_factory=dict)
    answers: dict[int, tuple[int, str]] = field(default_factory=dict)  # idx -> (status, outcome), wrk's
    sent: set[int] = field(default_factory=set)
    retries: dict[int, tuple[int, str]] = field(default_factory=dict)  # idx -> answer to the re-send
    signed_at: int = 0
    cpu: dict[str, float] = field(default_factory=dict)  # CPU seconds by group while wrk ran
    per_second: list[int] = field(default_factory=list)  # 2xx answers in each whole second of the run

    @property
    def duration_s(self) -> float:
        return float(self.raw["duration_us"]) / 1e6


def run_phase(
    phase: Phase, seconds: float, base: str, args: argparse.Namespace, out_dir: Path, server_session: int
) -> None:
    deliveries_prefix = out_dir / f"deliveries-{phase.name}"
    log_prefix = out_dir / f"answers-{phase.name}"
    path = f"/api/v1/webhooks/suppliers/{phase.supplier_id}"
    phase.signed_at = write_signed(phase.deliveries, phase.secret, deliveries_prefix, args.threads)
    cmd = [
        "wrk", f"-t{args.threads}", f"-c{args.connections}", f"-d{max(1, round(seconds))}s", "--timeout", "5s",
        "-s", str(WRK_SCRIPTS / "webhooks.lua"), base, "--",
        str(deliveries_prefix), path, str(log_prefix),
    ]  # fmt: skip
    env = {**os.environ, "LUA_PATH": f"{WRK_SCRIPTS}/?.lua;;"}
    database = urlsplit(args.database_url).path.lstrip("/")
    before = cpu_sample(server_session, database)
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=seconds + 120)
    phase.cpu = cpu_split(before, cpu_sample(server_session, database))
    (out_dir / f"wrk-{phase.name}.txt").write_text(proc.stdout + proc.stderr)
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("BENCH_RESULT ")), None)
    if proc.returncode != 0 or line is None:
        raise BenchError(f"wrk failed for {phase.name} ({proc.returncode}):\n{proc.stdout}{proc.stderr}")
    phase.raw = json.loads(line.removeprefix("BENCH_RESULT "))
    if time.time() > phase.signed_at + 290:
        raise BenchError(f"{phase.name}: the run outlived the signatures' ±5 min tolerance; use a shorter --duration")
    asyncio.run(_settle(args.database_url))  # wrk stops without waiting for its requests in flight

    seconds_seen: Counter[int] = Counter()
    for t in range(args.threads):
        log = Path(f"{log_prefix}-{t}.log")
        for text in log.read_text().splitlines() if log.exists() else ():
            idx_text, status, outcome, second = text.split(" ")
            phase.answers[int(idx_text)] = (int(status), outcome)
            if status.startswith("2"):
                seconds_seen[int(second)] += 1
    if seconds_seen:  # the first and last seconds are partial: left out
        first, last = min(seconds_seen), max(seconds_seen)
        phase.per_second = [seconds_seen[s] for s in range(first + 1, last)]
    sent_per_thread: list[int] = phase.raw["sent"]
    phase.sent = {d.idx for d in phase.deliveries if d.idx // args.threads < sent_per_thread[d.idx % args.threads]}
    if set(phase.answers) - phase.sent:
        raise BenchError(f"{phase.name}: answers for deliveries wrk did not send (the file's split is off)")

    # What a supplier does with a push it got no answer to: send it again (same id and body, new timestamp).
    unanswered = sorted(phase.sent - set(phase.answers))
    by_idx = {d.idx: d for d in phase.deliveries}
    with httpx.Client(base_url=base, timeout=30) as client:
        for idx in unanswered:
            d = by_idx[idx]
            ts = int(time.time())
            headers = {
                "content-type": "application/json",
                "webhook-id": d.webhook_id,
                "webhook-timestamp": str(ts),
                "webhook-signature": _signature(phase.secret, d, ts),
            }
            response = client.post(path, content=d.body, headers=headers)
            outcome = response.json().get("outcome", "-") if response.status_code == 200 else "-"
            phase.retries[idx] = (response.status_code, outcome)


# --- the database check ----------------------------------------------------------------------------------


async def _stored(url: str, supplier_id: int) -> tuple[list[asyncpg.Record], list[asyncpg.Record]]:
    conn = await asyncpg.connect(_asyncpg_dsn(url))
    try:
        events = await conn.fetch("SELECT webhook_id, type FROM webhook_event WHERE supplier_id = $1", supplier_id)
        stock = await conn.fetch(
            "SELECT supplier_sku, available, observed_at FROM supplier_stock WHERE supplier_id = $1", supplier_id
        )
        return list(events), list(stock)
    finally:
        await conn.close()


def _us(at: datetime) -> int:
    delta = at - EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def analyse(phase: Phase, url: str) -> dict[str, Any]:
    """Figures of the wrk window, and the database checked against every answer."""
    by_idx = {d.idx: d for d in phase.deliveries}
    statuses = Counter(status for status, _ in phase.answers.values())
    outcomes = Counter(outcome for status, outcome in phase.answers.values() if 200 <= status < 300)
    accepted = sum(n for status, n in statuses.items() if 200 <= status < 300)
    kinds_sent = Counter(by_idx[i].kind for i in phase.sent)
    wrong_answers: Counter[str] = Counter()  # a good delivery not answered 2xx, or a bad one not answered 401
    final: dict[int, tuple[int, str]] = {**phase.answers, **phase.retries}
    applied_per_id: Counter[str] = Counter()
    accepted_ids: set[str] = set()
    for idx, (status, outcome) in final.items():
        d = by_idx[idx]
        if d.kind == "bad":
            if status != 401:
                wrong_answers[f"bad signature answered {status}"] += 1
            continue
        if 200 <= status < 300:
            accepted_ids.add(d.webhook_id)
            if outcome == "applied":
                applied_per_id[d.webhook_id] += 1
        else:
            wrong_answers[f"{d.kind} answered {status}"] += 1
    bad_ids = {by_idx[i].webhook_id for i in phase.sent if by_idx[i].kind == "bad"}

    events, stock = asyncio.run(_stored(url, phase.supplier_id))
    stored_ids = {row["webhook_id"] for row in events}
    lost = accepted_ids - stored_ids
    unexpected = stored_ids - accepted_ids
    doubly = sorted(wid for wid, n in applied_per_id.items() if n > 1)
    wrong_type = sum(1 for row in events if row["type"] != "stock.changed")

    newest: dict[str, Delivery] = {}
    for idx in phase.sent:
        d = by_idx[idx]
        if d.kind != "bad" and d.webhook_id in accepted_ids:
            if d.sku not in newest or d.fact_us > newest[d.sku].fact_us:
                newest[d.sku] = d
    held = {row["supplier_sku"]: (row["available"], _us(row["observed_at"])) for row in stock}
    not_newest = sorted(
        sku for sku, d in newest.items() if held.get(sku) != (d.available, d.fact_us)
    )  # missing, or holding another fact than the newest
    extra_skus = sorted(set(held) - set(newest))
    # Stale facts among what was sent: each had a newer fact of its SKU earlier in the file, so under
    # any interleaving that is applied first or later they must lose.
    stale_sent = sum(1 for i in phase.sent if by_idx[i].stale and by_idx[i].webhook_id in accepted_ids)

    checks = {
        "no accepted event lost": not lost,
        "webhook_event rows == distinct accepted webhook-ids": len(stored_ids) == len(accepted_ids) and not unexpected,
        "no bad-signature event written": not (bad_ids & stored_ids),
        "no webhook-id applied twice": not doubly,
        "every SKU holds its newest fact": not not_newest and not extra_skus,
        "every delivery answered as expected": not wrong_answers,
    }
    seconds = phase.duration_s
    return {
        "accepted_eps": round(accepted / seconds, 1) if seconds else 0.0,
        "applied_eps": round(outcomes.get("applied", 0) / seconds, 1) if seconds else 0.0,
        "requests_ps": round(len(phase.answers) / seconds, 1) if seconds else 0.0,
        "p50_ms": phase.raw["p50_us"] / 1000,
        "p90_ms": phase.raw["p90_us"] / 1000,
        "p99_ms": phase.raw["p99_us"] / 1000,
        "max_ms": phase.raw["max_us"] / 1000,
        "duration_s": round(seconds, 3),
        "per_second": phase.per_second,
        "cpu_s": phase.cpu,
        "cpu_us_per_accepted": {
            k: round(v * 1e6 / accepted) for k, v in phase.cpu.items() if k not in ("wall", "machine_busy") and accepted
        },
        "answered": len(phase.answers),
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "outcomes": dict(sorted(outcomes.items())),
        "socket_errors": {k: v for k, v in phase.raw["errors"].items() if k != "status" and v},
        "sent": dict(sorted(kinds_sent.items())),
        "stale_facts_sent": stale_sent,
        "planned": len(phase.deliveries),
        "exhausted": bool(phase.raw["exhausted"]),
        "resent_unanswered": len(phase.retries),
        "resent_answers": dict(Counter(f"{s} {o}" for s, o in phase.retries.values())),
        "db": {
            "webhook_event_rows": len(stored_ids),
            "distinct_accepted_ids": len(accepted_ids),
            "applied_answers": sum(applied_per_id.values()),
            "lost": len(lost),
            "unexpected_rows": len(unexpected),
            "doubly_applied": len(doubly),
            "wrong_type_rows": wrong_type,
            "skus_checked": len(newest),
            "skus_not_newest": len(not_newest),
            "skus_extra": len(extra_skus),
            "examples": {"lost": sorted(lost)[:5], "doubly": doubly[:5], "not_newest": not_newest[:5]},
        },
        "wrong_answers": dict(wrong_answers),
        "checks": checks,
    }


# --- report -----------------------------------------------------------------------------------------------


def _mark(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def report(result: dict[str, Any], warmup: dict[str, Any] | None, args: argparse.Namespace) -> dict[str, bool]:
    r = result
    print()
    print(f"accepted events/s   {r['accepted_eps']:9.1f}   (2xx answers: applied + redeliveries answered duplicate)")
    print(f"applied events/s    {r['applied_eps']:9.1f}   (first deliveries applied)")
    print(f"latency             p50 {r['p50_ms']:.2f} ms   p90 {r['p90_ms']:.2f} ms   p99 {r['p99_ms']:.2f} ms   "
          f"max {r['max_ms']:.2f} ms")  # fmt: skip
    print(f"window              {r['duration_s']:.1f} s, {r['answered']} answers, {args.connections} connections")
    if r["per_second"]:
        ps = r["per_second"]
        print(f"per second (2xx)    min {min(ps)}  median {sorted(ps)[len(ps) // 2]}  max {max(ps)}")
    cpu, per = r["cpu_s"], r["cpu_us_per_accepted"]
    if cpu.get("wall"):
        print(
            f"CPU while wrk ran   machine {cpu['machine_busy'] / cpu['wall']:.2f} of {os.cpu_count()} cores busy; "
            f"µs per accepted event: server {per.get('server', 0)}, postgres (bench db) {per.get('pg_bench', 0)}, "
            f"postgres (rest) {per.get('pg_other', 0)}, wrk {per.get('wrk', 0)}, other processes "
            f"{per.get('other_processes', 0)}"
        )
    print(f"status counts       {r['statuses']}   socket errors {r['socket_errors'] or 0}")
    print(f"outcomes (2xx)      {r['outcomes']}")
    print(f"sent by kind        {r['sent']}   stale facts among them {r['stale_facts_sent']}")
    print(f"left in flight      {r['resent_unanswered']} re-sent after the run: {r['resent_answers']}")
    db = r["db"]
    print(
        f"database            webhook_event rows {db['webhook_event_rows']}, distinct accepted ids "
        f"{db['distinct_accepted_ids']}, lost {db['lost']}, unexpected {db['unexpected_rows']}, "
        f"applied twice {db['doubly_applied']}; SKUs checked {db['skus_checked']}, not holding the newest fact "
        f"{db['skus_not_newest']}, rows for no event {db['skus_extra']}"
    )
    if r["wrong_answers"]:
        print(f"unexpected answers  {r['wrong_answers']}")
    if r["exhausted"]:
        print("WARNING: wrk ran out of deliveries before the end of the run: raise --max-rate")
    targets: dict[str, bool] = {}
    targets[f"accepted events/s >= {TARGET_EPS:g}"] = r["accepted_eps"] >= TARGET_EPS and not r["exhausted"]
    for name, ok in r["checks"].items():
        targets[name] = ok
    if warmup is not None:
        targets["warm-up supplier's database checks"] = all(warmup["checks"].values())
    print()
    for name, ok in targets.items():
        print(f"{name:<55} {_mark(ok)}")
    print(f"targets: {'ALL PASS' if all(targets.values()) else 'NOT MET'}")
    return targets


# --- the run ----------------------------------------------------------------------------------------------


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="bench/webhooks.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--duration", type=float, default=15.0, help=f"seconds of load (default 15, at most {MAX_DURATION:g})"
    )
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds of warm-up (another supplier), 0 for none")
    parser.add_argument("--connections", type=int, default=64, help="wrk connections (default 64)")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads (default 2)")
    parser.add_argument("--workers", type=int, default=2, help="server worker processes (default 2)")
    parser.add_argument("--skus", type=int, default=500, help="distinct SKUs the events are about (default 500)")
    parser.add_argument("--redeliver", type=float, default=0.05, help="share delivered twice (default 0.05)")
    parser.add_argument("--stale", type=float, default=0.10, help="share of facts older than one sent before (0.10)")
    parser.add_argument("--bad", type=float, default=0.01, help="share with a bad signature (default 0.01)")
    parser.add_argument(
        "--max-rate", type=float, default=5000.0,
        help="deliveries signed per second of run (default 5000): wrk stops early if it sends them all",
    )  # fmt: skip
    parser.add_argument("--seed", type=int, default=None, help="random seed of the plan (default: random)")
    args = parser.parse_args(argv)
    if args.connections < args.threads:
        parser.error("--connections must be at least --threads")
    if not 1 <= args.duration <= MAX_DURATION:
        parser.error(f"--duration must be 1 to {MAX_DURATION:g} s: the deliveries are signed when the run starts")
    if not 0 <= args.warmup <= 60:
        parser.error("--warmup must be 0 to 60 s")
    for name in ("redeliver", "stale", "bad"):
        if not 0 <= getattr(args, name) <= 0.5:
            parser.error(f"--{name} must be between 0 and 0.5")
    return args


def _create_supplier(client: httpx.Client, name: str, secret: str) -> int:
    body = {"name": name, "adapter": "rest_json", "base_url": "http://127.0.0.1:9/", "webhook_secrets": [secret]}
    response = client.post("/api/v1/suppliers", json=body)
    if response.status_code != 201:
        raise BenchError(f"creating supplier {name!r}: {response.status_code} {response.text}")
    supplier_id: int = response.json()["id"]
    return supplier_id


def _run(args: argparse.Namespace, procs: Processes) -> dict[str, Any]:
    if shutil.which("wrk") is None:
        raise BenchError("wrk is not installed: `apt-get install -y wrk` (Debian/Ubuntu), then run again")
    url = args.database_url = os.environ.get("ATELIER_BENCH_DATABASE_URL", DEFAULT_URL)
    if not url.startswith("postgresql+asyncpg://"):
        raise BenchError(f"ATELIER_BENCH_DATABASE_URL must be postgresql+asyncpg://..., not {url!r}")
    out_dir = BENCH / "results" / time.strftime("webhooks-%Y%m%d-%H%M%S")
    out_dir.mkdir(parents=True, exist_ok=True)
    seed = args.seed if args.seed is not None else secrets.randbits(32)
    rng = random.Random(seed)

    env = server_env(url, ATELIER_ALLOW_PRIVATE_SUPPLIER_URLS="true")

    where = urlsplit(url)
    print(f"database  {where.hostname}:{where.port or 5432}{where.path} (reset)", flush=True)
    asyncio.run(_reset_database(url))
    _atelier(env, "db", "upgrade")
    _atelier(env, "user", "create", "--username", MANAGER, "--role", "manager", "--password-stdin",
             stdin=PASSWORD + "\n")  # fmt: skip

    port = _free_port()
    server = procs.start(
        "atelier serve",
        [*_atelier_command(), "serve", "--workers", str(args.workers), "--port", str(port)],
        env,
        out_dir / "atelier-serve.log",
    )
    base = f"http://127.0.0.1:{port}"
    _wait_ready(server, f"{base}/health/ready")
    print(f"server    atelier :{port}, {args.workers} workers", flush=True)

    login = httpx.post(f"{base}/api/v1/auth/token", json={"username": MANAGER, "password": PASSWORD}, timeout=30)
    if login.status_code != 200:
        raise BenchError(f"login as {MANAGER} failed: {login.status_code} {login.text}")
    headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
    main_secret, warm_secret = new_secret(), new_secret()
    with httpx.Client(base_url=base, headers=headers, timeout=30) as client:
        main_id = _create_supplier(client, "Bench supplier", main_secret)
        warm_id = _create_supplier(client, "Warm-up supplier", warm_secret)

    warm_result: dict[str, Any] | None = None
    if args.warmup > 0:
        warm = Phase("warmup", warm_id, warm_secret, plan(round(args.max_rate * (args.warmup + 5)), args, rng, "w"))
        print(f"warm-up   {args.warmup:g} s on supplier {warm_id}", flush=True)
        run_phase(warm, args.warmup, base, args, out_dir, server.proc.pid)
        warm_result = analyse(warm, url)
        print(f"          {warm_result['accepted_eps']:.1f} accepted/s, checks "
              f"{_mark(all(warm_result['checks'].values()))}", flush=True)  # fmt: skip

    deliveries = plan(round(args.max_rate * (args.duration + 5)), args, rng, "m")
    main = Phase("run", main_id, main_secret, deliveries)
    load = round(os.getloadavg()[0], 2)
    print(f"running   {args.duration:g} s on supplier {main_id}, {len(deliveries)} deliveries planned, "
          f"-t{args.threads} -c{args.connections}", flush=True)  # fmt: skip
    run_phase(main, args.duration, base, args, out_dir, server.proc.pid)
    if server.proc.poll() is not None:
        raise BenchError(f"the server died during the run; log {server.log_path}")
    result = analyse(main, url)
    targets = report(result, warm_result, args)

    summary = {
        "bench": "webhooks",
        "run": result,
        "warmup": warm_result,
        "targets": targets,
        "pass": all(targets.values()),
        "setup": {
            "duration_s": args.duration,
            "warmup_s": args.warmup,
            "threads": args.threads,
            "connections": args.connections,
            "workers": args.workers,
            "skus": args.skus,
            "redeliver": args.redeliver,
            "stale": args.stale,
            "bad": args.bad,
            "max_rate": args.max_rate,
            "seed": seed,
            "wrk": subprocess.run(["wrk", "-v"], capture_output=True, text=True).stdout.split("\n")[0].strip(),
            "cpus": os.cpu_count(),
            "loadavg_1m_at_start": load,
            "loadavg_1m_at_end": round(os.getloadavg()[0], 2),
            "commit": _git("rev-parse", "--short", "HEAD"),
            "uncommitted_changes": bool(_git("status", "--porcelain", "--", "service", "domain", "integrations")),
            "results_dir": str(out_dir.relative_to(ROOT)),
        },
    }
    (out_dir / "results.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(f"details   {out_dir.relative_to(ROOT)}/")
    return summary


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse_args(argv)
    code, summary = guarded("bench/webhooks.py", lambda procs: _run(args, procs))
    if summary is None:
        return code
    # A measurement, not a gate, for the throughput; but a failed database check is a failure.
    return 0 if all(summary["run"]["checks"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
