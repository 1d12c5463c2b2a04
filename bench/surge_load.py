"""The load generator of bench/surge.py: one process drives its share of the chain's branches and suppliers.

Open loop: every request has a scheduled time on a fixed-rate grid, is sent at that time whatever the
answers to earlier ones, and its latency is measured from that time, so a server (or a client) that falls
behind shows up as latency instead of silently lowering the rate.

Each process owns whole branches (their jobs, their desk's source address) and whole suppliers (their
webhook facts), so no state is shared between processes; the orchestrator sends in the pickup codes it
reads from the SMS gateway and gets back, after each step, the figures and a ledger of what the service
accepted, which its database check compares with the database.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import math
import random
import re
import threading
import time
import uuid
from collections import Counter, deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from multiprocessing.queues import Queue
from typing import Any

import httpx

from bench.api import INTAKE_BODY
from bench.webhooks import _body as stock_body
from bench.webhooks import _iso
from integrations.webhooks import new_secret, sign

# Operations as reported; a "bench step" tick sends a transition or an estimate, whichever the job needs next.
OPS = (
    "intake",
    "intake_resend",
    "board",
    "queue",
    "transition",
    "estimate",
    "webhook",
    "webhook_forged",
    "pickup",
)
# What one tick of each schedule is, chain-wide share of the base rate (sums to 1). Board and queue reads
# dominate a shop's traffic; a job needs five bench steps (diagnosis, estimate, repair, check, ready) per
# pickup, so bench steps are five times the pickups and intakes outnumber pickups (the backlog grows).
MIX: dict[str, float] = {
    "board": 0.30,
    "queue": 0.15,
    "bench_step": 0.25,
    "webhook": 0.15,
    "intake": 0.10,
    "pickup": 0.05,
}
BRANCH_TICKS = ("board", "queue", "bench_step", "intake", "pickup")  # spread over the branches
RESEND_SHARE = 0.05  # accepted intakes sent again with the same key (a double click): must replay
MAX_RESENDS = 2  # an intake refused with 429/503, a 5xx or no answer is re-sent up to this many times
ORDER_SHARE, REDELIVER_SHARE, FORGED_SHARE = 0.20, 0.03, 0.02  # of webhook ticks; the rest is stock
STOCK_SKUS = 100  # SKUs each supplier pushes stock for
BUDGET_CENTS, PRICE_CENTS = 50_000, 8_900  # the estimate fits the pre-approved budget: no approval wait
# A job's next bench step by where it is; "estimated" is diagnosing with its estimate written.
NEXT_STEP: dict[str, tuple[str, str | None]] = {
    "quality_check": ("transition", "ready_for_pickup"),
    "repairing": ("transition", "quality_check"),
    "estimated": ("transition", "repairing"),
    "diagnosing": ("estimate", None),
    "received": ("transition", "diagnosing"),
}
AFTER_STEP = {
    "received": "diagnosing",
    "diagnosing": "estimated",
    "estimated": "repairing",
    "repairing": "quality_check",
    "quality_check": "ready_for_pickup",
}
CODE_RE = re.compile(r"(?:code de retrait|pickup code)\s*:\s*([A-Z0-9]{4}-[A-Z0-9]{4})")


# --- what the orchestrator hands each process -----------------------------------------------------------


@dataclass(frozen=True)
class BranchSetup:
    index: int  # 0..89, also in the phone numbers: a code's SMS finds its branch (and process)
    code: str
    ip: str  # the desk's source address: per-IP limits (pickup, sign-in) count per shop, as in a real chain
    desk_token: str
    tech_token: str


@dataclass(frozen=True)
class OrderSetup:
    order_id: int
    supplier_ref: str
    po: str
    promised_s: int  # the line's promised date, Unix seconds


@dataclass(frozen=True)
class SupplierSetup:
    id: int
    secret: str
    orders: tuple[OrderSetup, ...]


@dataclass(frozen=True)
class GeneratorConfig:
    index: int
    base_url: str
    branches: tuple[BranchSetup, ...]
    total_branches: int
    suppliers: tuple[SupplierSetup, ...]
    total_suppliers: int
    timeout_s: float
    seed: int


@dataclass(frozen=True)
class StepOrder:
    name: str
    base_rate: float  # chain-wide requests a second at 1x
    multiplier: float
    start_at: float  # wall clock (time.time()): every process starts together
    seconds: float


# --- what each process hands back ------------------------------------------------------------------------


@dataclass
class OpStats:
    latencies_ms: list[float] = field(default_factory=list)  # every request sent, whatever its answer
    outcomes: Counter[str] = field(default_factory=Counter)  # "201", "429", "timeout", "ConnectError"
    without_retry_after: int = 0  # 429/503 answers missing Retry-After
    skipped: int = 0  # ticks that found nothing to do (no job to move, no code to pick up with)
    examples: list[str] = field(default_factory=list)  # the first 5xx/transport errors, for the report


@dataclass
class Ledger:
    """What the service answered to writes, for the database check (this step's entries only)."""

    # (key, status, ref): every answer to an intake key; status is the code or a transport error name.
    intakes: list[tuple[str, str, str | None]] = field(default_factory=list)
    # (supplier id, webhook id, kind, status, outcome, subject, fact µs, value): kind stock|order|forged;
    # a redelivery repeats its original's row with its own answer.
    webhooks: list[tuple[int, str, str, str, str, str, int, int]] = field(default_factory=list)
    # (ref, action, status): action is a stage moved to, "estimate" or "collected" (the hand-over).
    moves: list[tuple[str, str, str]] = field(default_factory=list)
    uncertain: list[str] = field(default_factory=list)  # jobs whose last write has no definite answer


@dataclass
class StepResult:
    name: str
    process: int
    stats: dict[str, OpStats]
    ledger: Ledger
    scheduled: Counter[str]  # ticks per schedule
    late_ms: list[float]  # how late the scheduler fired each tick (the generator's own lag)
    code_lag_s: list[float]  # ready_for_pickup answered -> its SMS at the gateway
    elapsed_s: float  # from the step's start to its last answer


# --- jobs as this process knows them ---------------------------------------------------------------------


@dataclass(slots=True)
class Job:
    ref: str
    branch: int
    phone: str
    version: int
    stage: str  # NEXT_STEP's keys, "ready_for_pickup" or "collected"
    ready_at: float | None = None  # wall clock of the ready_for_pickup answer
    code: str | None = None
    not_before: float = 0.0  # monotonic: a pickup refused with Retry-After waits this long


@dataclass
class Branch:
    setup: BranchSetup
    client: httpx.AsyncClient
    pipeline: dict[str, deque[Job]]
    ready: deque[Job] = field(default_factory=deque)  # with their code, waiting for the customer
    phones: Iterator[int] = field(default_factory=itertools.count)

    @property
    def desk(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.setup.desk_token}"}

    @property
    def tech(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.setup.tech_token}"}

    def new_phone(self) -> str:
        """A French mobile number unique to this job: 06, the branch index, a sequence number."""
        return f"06{self.setup.index:02d}{next(self.phones):06d}"


def _client(base_url: str, ip: str | None, timeout: float) -> httpx.AsyncClient:
    # Enough connections that requests never queue in the client (that would be the bench's latency, not the
    # server's): an open loop against a slow server needs rate x latency of them.
    limits = httpx.Limits(max_connections=1000, max_keepalive_connections=100)
    transport = httpx.AsyncHTTPTransport(local_address=ip, limits=limits)
    return httpx.AsyncClient(base_url=base_url, transport=transport, timeout=timeout)


def _status(response: httpx.Response | None, error: str | None) -> str:
    return str(response.status_code) if response is not None else (error or "error")


def _ok(status: str) -> bool:
    return status.startswith("2")


def _retry_after(response: httpx.Response | None) -> float:
    """The wait a refusal asks for (1 to 5 s: a step is short), 1 s without a header or an answer."""
    if response is None:
        return 1.0
    try:
        return min(5.0, max(1.0, float(response.headers.get("retry-after", "1"))))
    except ValueError:
        return 1.0


def _version(response: httpx.Response) -> int:
    return int(response.headers.get("etag", '"v0"').strip('W/"v'))


def intake_body(phone: str, key: str) -> dict[str, Any]:
    """The body of bench/api.py's intake with this job's own phone (its SMS find it) and key (the database
    check finds the job by it), SMS consent and a budget the estimate fits."""
    customer = {**INTAKE_BODY["customer"], "phone": phone, "sms_consent": True}
    fault = {"category": "screen", "description": f"cracked screen [{key}]"}
    return {**INTAKE_BODY, "customer": customer, "fault": fault, "preapproved_budget_cents": BUDGET_CENTS}


# --- the generator ---------------------------------------------------------------------------------------


class Generator:
    def __init__(self, config: GeneratorConfig) -> None:
        self.config = config
        self.rng = random.Random(config.seed)
        self.branches = [
            Branch(b, _client(config.base_url, b.ip, config.timeout_s), {k: deque() for k in NEXT_STEP})
            for b in config.branches
        ]
        self.hook_client = _client(config.base_url, None, config.timeout_s)
        self.waiting_code: dict[str, Job] = {}  # phone -> job moved to ready, its SMS not seen yet
        self.early_codes: dict[str, tuple[str, float]] = {}  # phone -> (code, SMS time) before the answer
        self.accepted_hooks: dict[int, list[tuple[str, bytes, tuple[Any, ...]]]] = {}  # for redeliveries
        self.last_fact_us = 0
        self.codes_in = asyncio.Event()  # set by each code received (the seeding waits for them)
        self.cycles = {tick: itertools.cycle(range(len(self.branches))) for tick in BRANCH_TICKS}
        self.supplier_cycle = itertools.cycle(range(len(config.suppliers)))
        self._reset()

    def _reset(self) -> None:
        self.stats = {op: OpStats() for op in OPS}
        self.ledger = Ledger()
        self.scheduled: Counter[str] = Counter()
        self.late_ms: list[float] = []
        self.code_lag: list[float] = []

    async def close(self) -> None:
        for branch in self.branches:
            await branch.client.aclose()
        await self.hook_client.aclose()

    # --- sending and recording ---

    async def _send(
        self, op: str, t0: float, client: httpx.AsyncClient, method: str, url: str, **kwargs: Any
    ) -> tuple[httpx.Response | None, str]:
        """One request, timed from its scheduled time `t0` (monotonic); returns the answer and its status."""
        stats = self.stats[op]
        response: httpx.Response | None = None
        error: str | None = None
        sent_at = time.monotonic()
        try:
            async with asyncio.timeout(self.config.timeout_s):  # the client gives up, as a desk's page would
                response = await client.request(method, url, **kwargs)
        except (httpx.TimeoutException, TimeoutError):
            error = "timeout"
        except httpx.HTTPError as exc:
            error = type(exc).__name__
        stats.latencies_ms.append((time.monotonic() - t0) * 1000)
        status = _status(response, error)
        stats.outcomes[status] += 1
        if response is not None and response.status_code in (429, 503) and "retry-after" not in response.headers:
            stats.without_retry_after += 1
        failed = (response is not None and response.status_code >= 500) or error not in (None, "timeout")
        if failed and len(stats.examples) < 5:
            detail = response.text[:300] if response is not None else ""
            request_id = response.headers.get("x-request-id", "") if response is not None else ""
            after = f"after {time.monotonic() - sent_at:.1f} s"
            stats.examples.append(f"{method} {url} -> {status} {after} {request_id} {detail}".strip())
        return response, status

    # --- intake ---

    async def intake(self, t0: float) -> None:
        branch = self.branches[next(self.cycles["intake"])]
        phone, key = branch.new_phone(), uuid.uuid4().hex
        body, headers = intake_body(phone, key), {**branch.desk, "Idempotency-Key": key}
        response, ref = await self._intake_answered(branch, key, body, headers, t0)
        if response is None or ref is None:
            return
        if self.rng.random() < RESEND_SHARE:  # the same request again (a double click): must replay the job
            again, again_status = await self._send(
                "intake_resend", time.monotonic(), branch.client, "POST", "/api/v1/jobs", json=body, headers=headers
            )
            again_ref = again.json().get("ref") if again is not None and _ok(again_status) else None
            self.ledger.intakes.append((key, again_status, again_ref))
        branch.pipeline["received"].append(Job(ref, branch.setup.index, phone, _version(response) or 1, "received"))

    async def _intake_answered(
        self, branch: Branch, key: str, body: dict[str, Any], headers: dict[str, str], t0: float
    ) -> tuple[httpx.Response | None, str | None]:
        """Sends the intake, and again with the same key after a 429/503, a 5xx or no answer (as the key
        invites a client to), up to MAX_RESENDS times; every answer goes to the ledger. Returns the last
        answer and the job's ref when one was 2xx."""
        op = "intake"
        for attempt in range(MAX_RESENDS + 1):
            response, status = await self._send(
                op, t0, branch.client, "POST", "/api/v1/jobs", json=body, headers=headers
            )
            ref = response.json().get("ref") if response is not None and _ok(status) else None
            self.ledger.intakes.append((key, status, ref))
            refused = response is not None and response.status_code < 500 and response.status_code not in (429, 503)
            if ref is not None or refused or attempt == MAX_RESENDS:
                return response, ref  # accepted, refused for good (a 4xx: nothing written), or given up
            await asyncio.sleep(_retry_after(response))
            op, t0 = "intake_resend", time.monotonic()
        return None, None

    # --- board reads ---

    async def board(self, t0: float) -> None:
        branch = self.branches[next(self.cycles["board"])]
        await self._send("board", t0, branch.client, "GET", "/api/v1/jobs", params={"limit": 20}, headers=branch.desk)

    async def queue(self, t0: float) -> None:
        branch = self.branches[next(self.cycles["queue"])]
        await self._send("queue", t0, branch.client, "GET", "/api/v1/queue", params={"limit": 20}, headers=branch.tech)

    # --- bench steps ---

    def _pick_job(self) -> tuple[Branch, Job] | None:
        """The next branch's most advanced job that is not already being moved (as a technician finishes
        what is started first); another branch's when that one has none."""
        start = next(self.cycles["bench_step"])
        for offset in range(len(self.branches)):
            branch = self.branches[(start + offset) % len(self.branches)]
            for where in NEXT_STEP:
                if branch.pipeline[where]:
                    return branch, branch.pipeline[where].popleft()
        return None

    async def bench_step(self, t0: float) -> None:
        picked = self._pick_job()
        if picked is None:
            self.stats["transition"].skipped += 1
            return
        branch, job = picked
        op, to = NEXT_STEP[job.stage]
        path = f"/api/v1/jobs/{job.ref}"
        headers = {**branch.tech, "If-Match": f'"v{job.version}"'}
        if op == "estimate":
            line = {"kind": "part", "description": "screen assembly", "quantity": 1, "unit_price_cents": PRICE_CENTS}
            response, status = await self._send(
                op, t0, branch.client, "PUT", f"{path}/estimate", json={"lines": [line]}, headers=headers
            )
        else:
            body: dict[str, Any] = {"to": to, **({"outcome": "repaired"} if to == "ready_for_pickup" else {})}
            response, status = await self._send(
                op, t0, branch.client, "POST", f"{path}/transitions", json=body, headers=headers
            )
        self.ledger.moves.append((job.ref, to or "estimate", status))
        self._after_step(branch, job, response, status)

    def _after_step(self, branch: Branch, job: Job, response: httpx.Response | None, status: str) -> None:
        if response is not None and _ok(status):
            job.version = _version(response)
            job.stage = AFTER_STEP[job.stage]
            if job.stage == "ready_for_pickup":
                self._now_ready(branch, job)
            else:
                branch.pipeline[job.stage].append(job)
        elif response is not None and response.status_code == 429:
            branch.pipeline[job.stage].appendleft(job)  # refused before any work: try again
        else:
            self.ledger.uncertain.append(job.ref)  # no definite answer (or a refusal the bench did not expect)

    def _now_ready(self, branch: Branch, job: Job) -> None:
        job.ready_at = time.time()
        early = self.early_codes.pop(job.phone, None)
        if early is None:
            self.waiting_code[job.phone] = job
        else:
            self._with_code(branch, job, *early)

    def _with_code(self, branch: Branch, job: Job, code: str, sms_at: float) -> None:
        job.code = code
        if job.ready_at is not None:
            self.code_lag.append(max(0.0, sms_at - job.ready_at))
        branch.ready.append(job)

    def on_code(self, phone: str, code: str, sms_at: float) -> None:
        """A pickup code reached the customer (the orchestrator read it at the SMS gateway)."""
        self.codes_in.set()
        job = self.waiting_code.pop(phone, None)
        if job is None:
            self.early_codes[phone] = (code, sms_at)  # before the ready_for_pickup answer came back
            return
        branch = next(b for b in self.branches if b.setup.index == job.branch)
        self._with_code(branch, job, code, sms_at)

    # --- pickups ---

    def _pick_ready(self) -> tuple[Branch, Job] | None:
        start = next(self.cycles["pickup"])
        now = time.monotonic()
        for offset in range(len(self.branches)):
            branch = self.branches[(start + offset) % len(self.branches)]
            for _ in range(len(branch.ready)):
                job = branch.ready.popleft()
                if job.not_before <= now:
                    return branch, job
                branch.ready.append(job)
        return None

    async def pickup(self, t0: float) -> None:
        picked = self._pick_ready()
        if picked is None:
            self.stats["pickup"].skipped += 1
            return
        branch, job = picked
        body = {"code": job.code, "paid_cents": PRICE_CENTS, "id_checked": True}
        response, status = await self._send(
            "pickup", t0, branch.client, "POST", f"/api/v1/jobs/{job.ref}/pickup", json=body, headers=branch.desk
        )
        self.ledger.moves.append((job.ref, "collected", status))
        if response is not None and response.status_code == 429:
            job.not_before = time.monotonic() + _retry_after(response)
            branch.ready.append(job)
        elif not _ok(status):
            self.ledger.uncertain.append(job.ref)

    # --- supplier webhooks ---

    def _fact_us(self) -> int:
        """Now in µs, strictly increasing in this process: each fact has its own time."""
        self.last_fact_us = max(self.last_fact_us + 1, time.time_ns() // 1000)
        return self.last_fact_us

    def _stock_event(self, supplier: SupplierSetup) -> tuple[bytes, tuple[Any, ...]]:
        sku = f"SG-{supplier.id}-{self.rng.randrange(STOCK_SKUS):03d}"
        fact, available = self._fact_us(), self.rng.randrange(0, 500)
        body = stock_body(sku, available, self.rng.randrange(100, 50_000), fact, None)
        return body, ("stock", sku, fact, available)

    def _order_event(self, supplier: SupplierSetup) -> tuple[bytes, tuple[Any, ...]]:
        order = self.rng.choice(supplier.orders)
        fact = self._fact_us()
        eta_s = order.promised_s + self.rng.randrange(-24, 72) * 3600  # some ahead of the promise, some late
        data = {"order_id": order.supplier_ref, "po": order.po, "eta": _iso(eta_s * 1_000_000)}
        body = json.dumps({"type": "order.eta_revised", "timestamp": _iso(fact), "data": data}).encode()
        return body, ("order", order.supplier_ref, fact, eta_s)

    async def webhook(self, t0: float) -> None:
        supplier = self.config.suppliers[next(self.supplier_cycle)]
        draw = self.rng.random()
        earlier = self.accepted_hooks.get(supplier.id, [])
        op, secret = "webhook", supplier.secret
        if draw < FORGED_SHARE:
            webhook_id, (body, facts) = f"msg_{uuid.uuid4().hex}", self._stock_event(supplier)
            op, secret, facts = "webhook_forged", new_secret(), ("forged", *facts[1:])
        elif draw < FORGED_SHARE + REDELIVER_SHARE and earlier:
            webhook_id, body, facts = self.rng.choice(earlier)  # a retry of a push already answered 2xx
        else:
            order = draw < FORGED_SHARE + REDELIVER_SHARE + ORDER_SHARE and supplier.orders
            webhook_id = f"msg_{uuid.uuid4().hex}"
            body, facts = self._order_event(supplier) if order else self._stock_event(supplier)
        timestamp = int(time.time())
        headers = {
            "content-type": "application/json",
            "webhook-id": webhook_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": sign(secret, webhook_id, timestamp, body),
        }
        url = f"/api/v1/webhooks/suppliers/{supplier.id}"
        response, status = await self._send(op, t0, self.hook_client, "POST", url, content=body, headers=headers)
        outcome = str(response.json().get("outcome", "")) if response is not None and _ok(status) else ""
        kind, subject, fact, value = facts
        self.ledger.webhooks.append((supplier.id, webhook_id, kind, status, outcome, subject, fact, value))
        if _ok(status) and op == "webhook" and outcome == "applied":
            self.accepted_hooks.setdefault(supplier.id, []).append((webhook_id, body, facts))

    # --- a step ---

    def _plan(self, order: StepOrder, start: float) -> list[tuple[float, str]]:
        """Every tick of the step, in time order: each schedule on its fixed-rate grid (random phase)."""
        cfg = self.config
        plan: list[tuple[float, str]] = []
        for tick, share in MIX.items():
            if tick == "webhook":
                rate = order.base_rate * order.multiplier * share * len(cfg.suppliers) / cfg.total_suppliers
            else:
                rate = order.base_rate * order.multiplier * share * len(cfg.branches) / cfg.total_branches
            if rate <= 0:
                continue
            phase = self.rng.random() / rate
            count = math.ceil((order.seconds - phase) * rate)
            plan.extend((start + phase + k / rate, tick) for k in range(max(0, count)))
        plan.sort()
        return plan

    async def run_step(self, order: StepOrder) -> StepResult:
        self._reset()
        start = time.monotonic() + max(0.0, order.start_at - time.time())
        tasks: set[asyncio.Task[None]] = set()
        handlers = {
            "board": self.board,
            "queue": self.queue,
            "bench_step": self.bench_step,
            "webhook": self.webhook,
            "intake": self.intake,
            "pickup": self.pickup,
        }
        for at, tick in self._plan(order, start):
            delay = at - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            self.late_ms.append(max(0.0, (time.monotonic() - at) * 1000))
            self.scheduled[tick] += 1
            task = asyncio.create_task(handlers[tick](at))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        if tasks:  # every request gets its answer (or its timeout) before the step is reported
            await asyncio.wait(set(tasks), timeout=self.config.timeout_s * (MAX_RESENDS + 1) + 30)
        return StepResult(
            order.name,
            self.config.index,
            self.stats,
            self.ledger,
            self.scheduled,
            self.late_ms,
            self.code_lag,
            time.monotonic() - start,
        )

    # --- seeding: jobs waiting for pickup and a backlog, before the measured steps ---

    async def seed(self, ready_per_branch: int, backlog_per_branch: int) -> StepResult:
        """Walks `ready_per_branch` jobs a branch to ready_for_pickup through the API (5 bench steps each),
        then takes `backlog_per_branch` more in; the codes arrive through on_code as their SMS are sent."""
        self._reset()
        limit = asyncio.Semaphore(16)

        async def bounded(work: Any) -> None:
            async with limit:
                await work(time.monotonic())

        await asyncio.gather(*(bounded(self.intake) for _ in range(ready_per_branch * len(self.branches))))
        while any(branch.pipeline[where] for branch in self.branches for where in NEXT_STEP):
            movable = sum(len(branch.pipeline[where]) for branch in self.branches for where in NEXT_STEP)
            await asyncio.gather(*(bounded(self.bench_step) for _ in range(movable)))
        await asyncio.gather(*(bounded(self.intake) for _ in range(backlog_per_branch * len(self.branches))))
        deadline = time.monotonic() + 60
        while self.waiting_code and time.monotonic() < deadline:
            self.codes_in.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.codes_in.wait(), deadline - time.monotonic())
        return StepResult("seed", self.config.index, self.stats, self.ledger, self.scheduled, [], self.code_lag, 0.0)


# --- the process -----------------------------------------------------------------------------------------


def _pump(inbox: Queue[Any], loop: asyncio.AbstractEventLoop, messages: asyncio.Queue[Any]) -> None:
    """Moves the orchestrator's messages into the event loop (a multiprocessing queue blocks)."""
    while True:
        try:
            message = inbox.get()
        except (EOFError, OSError):
            message = ("stop",)
        loop.call_soon_threadsafe(messages.put_nowait, message)
        if message[0] == "stop":
            return


async def _serve(config: GeneratorConfig, inbox: Queue[Any], outbox: Queue[Any]) -> None:
    generator = Generator(config)
    messages: asyncio.Queue[Any] = asyncio.Queue()
    threading.Thread(target=_pump, args=(inbox, asyncio.get_running_loop(), messages), daemon=True).start()
    running: set[asyncio.Task[None]] = set()

    async def reply(work: Any) -> None:
        try:
            outbox.put(await work)
        except Exception as exc:  # the orchestrator waits for this reply: tell it rather than hang it
            outbox.put(("failed", config.index, repr(exc)))
            raise

    try:
        while True:
            message = await messages.get()
            kind = message[0]
            if kind == "code":
                generator.on_code(*message[1:])  # at once, even during a step
            elif kind in ("step", "seed"):
                work = generator.run_step(message[1]) if kind == "step" else generator.seed(*message[1:])
                task = asyncio.create_task(reply(work))
                running.add(task)
                task.add_done_callback(running.discard)
            elif kind == "stop":
                return
    finally:
        for task in running:
            task.cancel()
        await generator.close()


def run(config: GeneratorConfig, inbox: Queue[Any], outbox: Queue[Any]) -> None:
    """The process's entry point (multiprocessing, spawn)."""
    try:
        asyncio.run(_serve(config, inbox, outbox))
    except KeyboardInterrupt:
        pass
    except Exception as exc:  # the orchestrator waits for replies: tell it instead of hanging it
        outbox.put(("failed", config.index, repr(exc)))
        raise


def parse_code(body: str) -> str | None:
    match = CODE_RE.search(body)
    return match.group(1) if match else None
