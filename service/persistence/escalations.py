"""The escalation ladder's storage: the rungs reached per job and promise, and the staff alert feeds.

Rungs are recorded with INSERT ... ON CONFLICT DO NOTHING RETURNING against the unique (job, level,
promise), a batch of jobs in one statement: the sweep that inserts a rung acts on it, one that finds it
there (a re-run, a concurrent sweep) does nothing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, bindparam, func, select, union, update
from sqlalchemy.dialects import postgresql, sqlite

from domain.escalation import Level
from domain.model import Actor, Tier
from domain.parts import PartLine, PartStatus
from domain.stages import Role, Stage
from service.persistence.parts import LineRepository
from service.persistence.statements import Runner
from service.persistence.tables import MAX_ROW_ID, ON_ORDER_STATUSES, alert_t, escalation_t, job_t, line_t

# Lines that are on order and can therefore be late (a line still `needed` has no date to miss).
_ON_ORDER = (PartStatus.ORDERED.value, PartStatus.SHIPPED.value, PartStatus.BACKORDERED.value)
assert set(_ON_ORDER) == set(ON_ORDER_STATUSES), "the partial index ix_part_line_slipped names these statuses"
_CLOSED_STAGES = (Stage.COLLECTED.value, Stage.CANCELLED.value)

STAFF = "staff"
MANAGER = "manager"

# Alerts raised many at once. RETURNING (its rows unread) is what makes SQLAlchemy send the rows as one
# INSERT ... VALUES (...), (...) on both dialects ("insertmanyvalues"); without it asyncpg runs it once a row.
_INSERT_ALERTS = alert_t.insert().returning(alert_t.c.id)


@dataclass(frozen=True, slots=True)
class CandidateJob:
    """A job with at least one line that can be late, and everything the ladder needs to judge it."""

    job_id: int
    branch_id: int
    tier: Tier
    due_at: datetime
    preapproved_budget_cents: int | None
    lines: list[PartLine]


@dataclass(frozen=True, slots=True)
class Rung:
    """A rung of the ladder to record: reached by this job for this promise."""

    job_id: int
    level: Level
    promise_key: str
    reasons: Sequence[str]


@dataclass(frozen=True, slots=True)
class NewAlert:
    """An alert to raise on a branch's feed (`audience`: STAFF or MANAGER)."""

    branch_id: int
    job_id: int | None
    audience: str
    kind: str
    message: str
    data: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Alert:
    id: int
    branch_id: int
    job_id: int | None
    audience: str
    kind: str
    message: str
    data: Mapping[str, Any]
    created_at: datetime
    acknowledged_at: datetime | None
    acknowledged_by: str | None


class EscalationRepository:
    def __init__(self, runner: Runner) -> None:
        self._conn = runner.conn
        self._dialect = runner.conn.dialect.name
        self._lines = LineRepository(runner)

    async def candidates(self, now: datetime, limit: int) -> list[CandidateJob]:
        """Jobs with a line on order whose ETA passed or slipped past its promise, with all of their lines.

        Two halves, each read through an index that holds little else, so that only lines that can be late
        are read: ETA passed (the range `eta < now` of the index on (status, eta)) and ETA slipped past
        the promise (the partial index ix_part_line_slipped). A single `eta < now OR eta > promised_at`
        cannot use an index for its second half, and PostgreSQL then reads every line of the table. The
        statuses are sent as literals, so that the planner can prove the partial index applies."""
        on_order = line_t.c.status.in_(bindparam("on_order", list(_ON_ORDER), expanding=True, literal_execute=True))
        passed = select(line_t.c.job_id).where(on_order, line_t.c.eta < now)
        slipped = select(line_t.c.job_id).where(on_order, line_t.c.eta > line_t.c.promised_at)
        late = union(passed, slipped).limit(limit)
        job_ids = [row[0] for row in (await self._conn.execute(late)).all()]
        if not job_ids:
            return []
        jobs = (
            await self._conn.execute(
                select(job_t.c.id, job_t.c.branch_id, job_t.c.tier, job_t.c.due_at, job_t.c.preapproved_budget_cents)
                .where(job_t.c.id.in_(job_ids), job_t.c.stage.not_in(_CLOSED_STAGES))
                .order_by(job_t.c.id)
            )
        ).all()
        lines = await self._lines.for_jobs([row[0] for row in jobs])
        return [CandidateJob(row[0], row[1], Tier(row[2]), row[3], row[4], lines[row[0]]) for row in jobs]

    async def job_branch(self, job_id: int) -> int | None:
        row = (await self._conn.execute(select(job_t.c.branch_id).where(job_t.c.id == job_id))).first()
        return int(row[0]) if row else None

    async def recorded(self, job_ids: Sequence[int]) -> dict[tuple[int, str], set[Level]]:
        """The rungs already recorded, by (job, promise key)."""
        if not job_ids:
            return {}
        query = select(escalation_t.c.job_id, escalation_t.c.promise_key, escalation_t.c.level).where(
            escalation_t.c.job_id.in_(list(job_ids))
        )
        found: dict[tuple[int, str], set[Level]] = {}
        for job_id, key, level in (await self._conn.execute(query)).all():
            found.setdefault((job_id, key), set()).add(Level(level))
        return found

    async def levels(self, job_id: int, promise_key: str) -> list[Level]:
        """The rungs recorded for this job and promise, lowest first."""
        query = select(escalation_t.c.level).where(
            escalation_t.c.job_id == job_id, escalation_t.c.promise_key == promise_key
        )
        return sorted(Level(row[0]) for row in (await self._conn.execute(query)).all())

    async def record_many(self, rungs: Sequence[Rung], *, now: datetime) -> set[tuple[int, Level]]:
        """Record rungs in ONE INSERT ... ON CONFLICT DO NOTHING RETURNING; the (job, level) of those this
        call inserted. The others were there already, or a concurrent sweep inserted them first (on
        PostgreSQL the insert waits for that sweep's commit, then skips them): the unique constraint, not
        an earlier read, decides who acts.

        Rows go in the order given, and PostgreSQL takes the unique index's locks in that order: callers
        pass them in (job id, level) order, batch after batch, so that two sweeps wait on each other in
        the same order and never deadlock. RETURNING names the key (its rows come in no promised order)."""
        if not rungs:
            return set()
        insert = postgresql.insert if self._dialect == "postgresql" else sqlite.insert
        values = [
            {
                "job_id": rung.job_id,
                "level": int(rung.level),
                "promise_key": rung.promise_key,
                "reasons": list(rung.reasons),
                "created_at": now,
                "cleared_at": None,
            }
            for rung in rungs
        ]
        statement = (
            insert(escalation_t)
            .on_conflict_do_nothing(index_elements=["job_id", "level", "promise_key"])
            .returning(escalation_t.c.job_id, escalation_t.c.level)
        )
        return {(job_id, Level(level)) for job_id, level in (await self._conn.execute(statement, values)).all()}

    async def clear(self, job_id: int, now: datetime) -> int:
        """The parts are in: the job's open rungs are cleared (they stay as history)."""
        result = await self._conn.execute(
            update(escalation_t)
            .where(escalation_t.c.job_id == job_id, escalation_t.c.cleared_at.is_(None))
            .values(cleared_at=now)
        )
        return result.rowcount or 0

    async def current(self, job_ids: Sequence[int]) -> dict[int, Level]:
        """The highest open (not cleared) rung of each job that has one."""
        if not job_ids:
            return {}
        query = (
            select(escalation_t.c.job_id, func.max(escalation_t.c.level))
            .where(escalation_t.c.job_id.in_(list(set(job_ids))), escalation_t.c.cleared_at.is_(None))
            .group_by(escalation_t.c.job_id)
        )
        return {job_id: Level(level) for job_id, level in (await self._conn.execute(query)).all()}


class AlertRepository:
    def __init__(self, runner: Runner) -> None:
        self._conn = runner.conn

    async def add(
        self,
        *,
        branch_id: int,
        job_id: int | None,
        audience: str,
        kind: str,
        message: str,
        data: Mapping[str, Any],
        now: datetime,
    ) -> int:
        values = _alert_values(NewAlert(branch_id, job_id, audience, kind, message, data), now)
        result = await self._conn.execute(alert_t.insert().values(**values).returning(alert_t.c.id))
        alert_id: int = result.scalar_one()
        return alert_id

    async def add_many(self, alerts: Sequence[NewAlert], *, now: datetime) -> None:
        """Alerts in the order given, in one multi-row INSERT: a sweep raises a batch of jobs' alerts in
        one statement, not one an alert. (`_INSERT_ALERTS` says why RETURNING.)"""
        if alerts:
            await self._conn.execute(_INSERT_ALERTS, [_alert_values(alert, now) for alert in alerts])

    def _visible(self, actor: Actor) -> Any:
        """A branch's staff see its staff feed; its managers also the manager feed; a chain-wide manager
        sees every branch's feeds."""
        if actor.chain_wide:
            return alert_t.c.id.is_not(None)
        audiences = [STAFF, MANAGER] if actor.role is Role.MANAGER else [STAFF]
        return and_(alert_t.c.branch_id == actor.branch_id, alert_t.c.audience.in_(audiences))

    async def feed(self, actor: Actor, *, limit: int, unacknowledged_only: bool = False) -> list[Alert]:
        query = select(alert_t).where(self._visible(actor))
        if unacknowledged_only:
            query = query.where(alert_t.c.acknowledged_at.is_(None))
        query = query.order_by(alert_t.c.created_at.desc(), alert_t.c.id.desc()).limit(limit)
        return [_to_alert(row) for row in (await self._conn.execute(query)).mappings().all()]

    async def for_job(self, job_id: int) -> list[Alert]:
        query = select(alert_t).where(alert_t.c.job_id == job_id).order_by(alert_t.c.id)
        return [_to_alert(row) for row in (await self._conn.execute(query)).mappings().all()]

    async def get(self, actor: Actor, alert_id: int) -> Alert | None:
        if not 0 < alert_id <= MAX_ROW_ID:
            return None
        query = select(alert_t).where(alert_t.c.id == alert_id, self._visible(actor))
        row = (await self._conn.execute(query)).mappings().first()
        return _to_alert(row) if row else None

    async def acknowledge(self, actor: Actor, alert_id: int, now: datetime) -> Alert | None:
        """Mark the alert seen (the first acknowledgement stays); None when the actor cannot see it."""
        alert = await self.get(actor, alert_id)
        if alert is None:
            return None
        if alert.acknowledged_at is None:
            await self._conn.execute(
                update(alert_t)
                .where(alert_t.c.id == alert_id, alert_t.c.acknowledged_at.is_(None))
                .values(acknowledged_at=now, acknowledged_by=actor.username)
            )
            alert = await self.get(actor, alert_id)
        return alert


def _alert_values(alert: NewAlert, now: datetime) -> dict[str, Any]:
    return {
        "branch_id": alert.branch_id,
        "job_id": alert.job_id,
        "audience": alert.audience,
        "kind": alert.kind,
        "message": alert.message,
        "data": dict(alert.data),
        "created_at": now,
    }


def _to_alert(row: Mapping[Any, Any]) -> Alert:
    return Alert(
        row["id"],
        row["branch_id"],
        row["job_id"],
        row["audience"],
        row["kind"],
        row["message"],
        row["data"] or {},
        row["created_at"],
        row["acknowledged_at"],
        row["acknowledged_by"],
    )
