"""The database side of bench/surge.py: the consistency check run after every step, and the outbox's lag.

The check compares what the service ANSWERED (the generators' ledgers) with what the database HOLDS,
read directly with asyncpg:
- intakes: every key answered 2xx is exactly one job (found by the key the bench wrote into its fault
  description), replays named the same job, no key made two jobs, a key refused for good (4xx) made none;
- webhooks: every accepted id is stored once, none of a forged push is, no id was answered `applied` twice,
  and each stock SKU and each order's lines hold the newest fact among those applied (facts apply once and
  in any order);
- job changes: each job's stage history is exactly the transitions and hand-over accepted for it, in order,
  and its estimates as many as accepted (none lost, none doubled, none of a refused request);
- no job in an impossible state (its stage against its history, its pickup code, slot, approval, outcome;
  one `created` event; the outbox entry of its intake and of its move to ready_for_pickup).
Writes without a definite answer (a timeout, a 5xx) may have happened or not: they are counted, not failed.
"""

from __future__ import annotations

import asyncio
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import asyncpg  # type: ignore[import-untyped]

from bench.surge_load import Ledger

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _ok(status: str) -> bool:
    return status.startswith("2")


def _definite_refusal(status: str) -> bool:
    """A 4xx: refused before anything was written (429 included: limits are checked before any work)."""
    return status[:1] == "4"


def _us(moment: datetime) -> int:
    delta = moment - EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _job_id(ref: str) -> int:
    return int(ref.rsplit("-", 1)[1])


@dataclass
class Check:
    name: str
    ok: bool
    detail: str


@dataclass
class Consistency:
    checks: list[Check] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return all(check.ok for check in self.checks)

    def add(self, name: str, bad: list[Any] | int, detail: str = "") -> None:
        count = bad if isinstance(bad, int) else len(bad)
        examples = "" if isinstance(bad, int) or not bad else f" e.g. {', '.join(map(str, bad[:3]))}"
        self.checks.append(Check(name, count == 0, f"{count} bad{examples}{'; ' + detail if detail else ''}"))


@dataclass
class History:
    """Everything the generators reported so far, merged."""

    intakes: dict[str, list[tuple[str, str | None]]] = field(default_factory=lambda: defaultdict(list))
    webhooks: list[tuple[int, str, str, str, str, str, int, int]] = field(default_factory=list)
    moves: dict[str, list[tuple[str, str]]] = field(default_factory=lambda: defaultdict(list))
    uncertain: set[str] = field(default_factory=set)

    def add(self, ledger: Ledger) -> None:
        for key, status, ref in ledger.intakes:
            self.intakes[key].append((status, ref))
        self.webhooks.extend(ledger.webhooks)
        for ref, action, status in ledger.moves:
            self.moves[ref].append((action, status))
        self.uncertain.update(ledger.uncertain)


# --- intakes ---------------------------------------------------------------------------------------------


async def _intakes(conn: asyncpg.Connection, history: History, result: Consistency) -> dict[str, str]:
    """Checks the intakes; returns the ref of every accepted key."""
    rows = await conn.fetch(
        "SELECT substring(fault_description from '\\[([0-9a-f]{32})\\]$') AS key, count(*) AS n, min(id) AS id "
        "FROM repair_job WHERE fault_description LIKE '%]' GROUP BY 1"
    )
    stored = {row["key"]: (row["n"], row["id"]) for row in rows if row["key"]}
    accepted: dict[str, str] = {}
    lost, doubled, mismatched, phantom, replays_differ = [], [], [], [], []
    unknown = unknown_written = 0
    for key, answers in history.intakes.items():
        refs = {ref for status, ref in answers if _ok(status) and ref}
        n, job_id = stored.get(key, (0, None))
        if n > 1:
            doubled.append(key)
        if refs:
            accepted[key] = sorted(refs)[0]
            if len(refs) > 1:
                replays_differ.append(key)
            if n == 0:
                lost.append(key)
            elif _job_id(accepted[key]) != job_id:
                mismatched.append(key)
        elif all(_definite_refusal(status) for status, _ in answers):
            if n:
                phantom.append(key)
        else:
            unknown += 1
            unknown_written += 1 if n else 0
    result.add("every accepted intake is exactly one job", lost + mismatched)
    result.add("no intake key made two jobs", doubled)
    result.add("replays of a key answered the same job", replays_differ)
    result.add("no intake refused with a 4xx was written", phantom)
    result.counts.update(
        intakes_accepted=len(accepted), intakes_unknown=unknown, intakes_unknown_written=unknown_written
    )
    return accepted


# --- webhooks --------------------------------------------------------------------------------------------


async def _webhooks(conn: asyncpg.Connection, history: History, result: Consistency) -> None:
    stored = {(row["supplier_id"], row["webhook_id"]) for row in await conn.fetch("SELECT * FROM webhook_event")}
    sent: dict[tuple[int, str], tuple[str, str, int, int]] = {}
    accepted, forged = set(), set()
    applied: Counter[tuple[int, str]] = Counter()
    wrong_outcome = []
    for supplier_id, webhook_id, kind, status, outcome, subject, fact, value in history.webhooks:
        key = (supplier_id, webhook_id)
        sent[key] = (kind, subject, fact, value)
        if kind == "forged":
            forged.add(key)
        elif _ok(status):
            accepted.add(key)
            applied[key] += outcome == "applied"
            if outcome not in ("applied", "duplicate"):
                wrong_outcome.append(f"{webhook_id}:{outcome}")
    ours = {key for key in stored if key in sent}
    result.add("every accepted webhook is stored", sorted(accepted - stored))
    result.add("no forged webhook is stored", sorted(forged & stored))
    result.add("no webhook id answered `applied` twice", [k for k, n in applied.items() if n > 1])
    result.add("every accepted webhook applied or a duplicate", wrong_outcome)
    await _newest_facts(conn, {key: sent[key] for key in ours}, result)
    result.counts.update(webhooks_accepted=len(accepted), webhooks_stored=len(ours), webhooks_forged=len(forged))


async def _newest_facts(
    conn: asyncpg.Connection, applied: dict[tuple[int, str], tuple[str, str, int, int]], result: Consistency
) -> None:
    """Each stock SKU and each order's open lines hold the newest of the facts applied (by the supplier's
    time), whatever order they arrived in."""
    newest: dict[tuple[str, int, str], tuple[int, int]] = {}
    for (supplier_id, _), (kind, subject, fact, value) in applied.items():
        key = (kind, supplier_id, subject)
        if key not in newest or fact > newest[key][0]:
            newest[key] = (fact, value)
    stock = {
        (row["supplier_id"], row["supplier_sku"]): (_us(row["observed_at"]), row["available"])
        for row in await conn.fetch("SELECT supplier_id, supplier_sku, observed_at, available FROM supplier_stock")
    }
    lines = defaultdict(set)
    query = (
        "SELECT o.supplier_id, o.supplier_ref, l.eta FROM part_line l JOIN supplier_order o ON o.id = l.order_id "
        "WHERE l.status IN ('ordered', 'shipped', 'backordered')"
    )
    for row in await conn.fetch(query):
        lines[(row["supplier_id"], row["supplier_ref"])].add(int(row["eta"].timestamp()) if row["eta"] else None)
    stale_stock, stale_eta = [], []
    for (kind, supplier_id, subject), (fact, value) in newest.items():
        if kind == "stock" and stock.get((supplier_id, subject)) != (fact, value):
            stale_stock.append(subject)
        if kind == "order" and lines.get((supplier_id, subject), {value}) != {value}:
            stale_eta.append(subject)
    result.add("every stock SKU holds its newest applied fact", stale_stock)
    result.add("every order's lines hold the newest applied ETA", stale_eta)


# --- job changes and states ------------------------------------------------------------------------------


async def _moves(conn: asyncpg.Connection, history: History, accepted: dict[str, str], result: Consistency) -> None:
    """Each job's stage history and estimates are exactly the changes accepted for it."""
    refs = {ref for ref in accepted.values() if ref not in history.uncertain}
    ids = [_job_id(ref) for ref in refs]
    stages: dict[int, list[str]] = defaultdict(list)
    estimates: Counter[int] = Counter()
    query = (
        "SELECT job_id, kind, to_stage FROM job_event WHERE job_id = ANY($1::int[]) "
        "AND kind IN ('stage_changed', 'estimate_set') ORDER BY id"
    )
    for row in await conn.fetch(query, ids):
        if row["kind"] == "estimate_set":
            estimates[row["job_id"]] += 1
        else:
            stages[row["job_id"]].append(row["to_stage"])
    differ = []
    for ref in sorted(refs):
        done = [action for action, status in history.moves.get(ref, []) if _ok(status)]
        want_stages = [action for action in done if action != "estimate"]
        job_id = _job_id(ref)
        if stages.get(job_id, []) != want_stages or estimates[job_id] != done.count("estimate"):
            differ.append(ref)
    result.add("each job's history is exactly its accepted changes", differ)
    moves = [status for answers in history.moves.values() for _, status in answers]
    result.counts.update(
        jobs_tracked=len(refs), changes_accepted=sum(_ok(s) for s in moves), jobs_uncertain=len(history.uncertain)
    )


# name -> a query returning the refs of jobs in that impossible state
IMPOSSIBLE: dict[str, str] = {
    "a stage that does not exist": (
        "SELECT id FROM repair_job WHERE stage NOT IN ('received', 'diagnosing', 'awaiting_approval', "
        "'awaiting_parts', 'repairing', 'quality_check', 'ready_for_pickup', 'collected', 'on_hold', 'cancelled')"
    ),
    "a stage its history does not end in": (
        "SELECT j.id FROM repair_job j LEFT JOIN LATERAL (SELECT to_stage FROM job_event e "
        "WHERE e.job_id = j.id AND e.kind = 'stage_changed' ORDER BY e.id DESC LIMIT 1) last ON true "
        "WHERE j.stage <> coalesce(last.to_stage, 'received')"
    ),
    "not exactly one `created` event": (
        "SELECT j.id FROM repair_job j LEFT JOIN job_event e ON e.job_id = j.id AND e.kind = 'created' "
        "GROUP BY j.id HAVING count(e.id) <> 1"
    ),
    "collected but not handed over (date, code, slot or passcode left)": (
        "SELECT id FROM repair_job WHERE stage = 'collected' AND (collected_at IS NULL OR pickup_code_hash IS NOT "
        "NULL OR pickup_slot IS NOT NULL OR passcode_ciphertext IS NOT NULL)"
    ),
    "waiting for pickup without a code": (
        "SELECT id FROM repair_job WHERE stage = 'ready_for_pickup' AND pickup_code_hash IS NULL"
    ),
    "repaired without an approval or a start": (
        "SELECT id FROM repair_job WHERE (stage IN ('repairing', 'quality_check') OR outcome = 'repaired') "
        "AND (approval IS NULL OR approval::text = 'null' OR work_started_at IS NULL)"
    ),
    "on hold without the stage it was held from, or the reverse": (
        "SELECT id FROM repair_job WHERE (stage = 'on_hold') <> (held_from IS NOT NULL)"
    ),
    "an outcome before pickup, or none at pickup": (
        "SELECT id FROM repair_job WHERE (outcome IS NOT NULL) <> (stage IN ('ready_for_pickup', 'collected') "
        "OR (stage = 'on_hold' AND held_from = 'ready_for_pickup'))"
    ),
    "an intake without its outbox message": (
        "SELECT j.id FROM repair_job j WHERE NOT EXISTS (SELECT 1 FROM outbox o WHERE o.job_id = j.id "
        "AND o.kind = 'notify' AND o.payload->>'template' = 'job_received')"
    ),
    "moves to ready_for_pickup and pickup messages differ in number": (
        "SELECT j.id FROM repair_job j WHERE (SELECT count(*) FROM job_event e WHERE e.job_id = j.id "
        "AND e.kind = 'stage_changed' AND e.to_stage = 'ready_for_pickup' AND e.from_stage <> 'on_hold') <> "
        "(SELECT count(*) FROM outbox o WHERE o.job_id = j.id AND o.kind = 'notify' "
        "AND o.payload->>'template' = 'ready_for_pickup')"
    ),
}


async def _states(conn: asyncpg.Connection, result: Consistency) -> None:
    for name, query in IMPOSSIBLE.items():
        rows = await conn.fetch(query)
        result.add(f"no job with {name}", [f"AT-{row['id']:06d}" for row in rows])
    result.counts["jobs"] = await conn.fetchval("SELECT count(*) FROM repair_job")


async def check(dsn: str, history: History) -> Consistency:
    result = Consistency()
    conn = await asyncpg.connect(dsn)
    try:
        accepted = await _intakes(conn, history, result)
        await _webhooks(conn, history, result)
        await _moves(conn, history, accepted, result)
        await _states(conn, result)
    finally:
        await conn.close()
    return result


# --- the outbox ------------------------------------------------------------------------------------------

BACKLOG = (
    "SELECT count(*) AS n, extract(epoch FROM now() - min(available_at)) AS oldest_s FROM outbox "
    "WHERE done_at IS NULL AND available_at <= now()"
)


@dataclass
class OutboxSample:
    backlog_max: int = 0
    oldest_s_max: float = 0.0
    connections_max: int = 0  # every PostgreSQL backend, ours or not: a full server shows here


async def sample_outbox(dsn: str, sample: OutboxSample, stop: asyncio.Event, every_s: float = 1.0) -> None:
    """Once a second until `stop` (an asyncio.Event) is set: the outbox's backlog (entries due and not done)
    and the age of its oldest, and PostgreSQL's connection count."""
    conn = await asyncpg.connect(dsn)
    try:
        while not stop.is_set():
            row = await conn.fetchrow(BACKLOG)
            sample.backlog_max = max(sample.backlog_max, row["n"])
            sample.oldest_s_max = max(sample.oldest_s_max, float(row["oldest_s"] or 0.0))
            connections = await conn.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'"
            )
            sample.connections_max = max(sample.connections_max, connections)
            try:
                await asyncio.wait_for(stop.wait(), every_s)
            except TimeoutError:
                pass
    finally:
        await conn.close()


async def outbox_lag(dsn: str, since: datetime, until: datetime) -> dict[str, Any]:
    """Entries written during the step: how long each took from written to done (relayed, handled)."""
    conn = await asyncpg.connect(dsn)
    try:
        row = await conn.fetchrow(
            "SELECT count(*) AS n, count(done_at) AS done, "
            "percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM done_at - created_at)) AS p50, "
            "percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM done_at - created_at)) AS p99, "
            "max(extract(epoch FROM done_at - created_at)) AS max "
            "FROM outbox WHERE created_at >= $1 AND created_at < $2",
            since,
            until,
        )
    finally:
        await conn.close()
    return {k: (float(v) if v is not None and k in ("p50", "p99", "max") else v) for k, v in dict(row).items()}


async def backlog(dsn: str) -> tuple[int, float]:
    conn = await asyncpg.connect(dsn)
    try:
        row = await conn.fetchrow(BACKLOG)
    finally:
        await conn.close()
    return int(row["n"]), float(row["oldest_s"] or 0.0)


async def outbox_kinds(dsn: str, ids: list[int]) -> dict[int, str]:
    """Each entry's kind, a message's with its template (`notify job_received`)."""
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            "SELECT id, kind, payload->>'template' AS template FROM outbox WHERE id = ANY($1::int[])", ids
        )
    finally:
        await conn.close()
    return {row["id"]: f"{row['kind']} {row['template']}" if row["template"] else row["kind"] for row in rows}
