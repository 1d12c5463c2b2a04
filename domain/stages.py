"""The job's stages and the one transition table, with the roles allowed to make each move.

Preconditions that depend on the job (an estimate before asking for approval, an approval or a
budget before repairing) live in `RepairJob._precondition_failure`; this
module only says which moves exist and who may make them.
"""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    FRONT_DESK = "front_desk"
    TECHNICIAN = "technician"
    MANAGER = "manager"


class Stage(StrEnum):
    RECEIVED = "received"
    DIAGNOSING = "diagnosing"
    AWAITING_APPROVAL = "awaiting_approval"
    AWAITING_PARTS = "awaiting_parts"
    REPAIRING = "repairing"
    QUALITY_CHECK = "quality_check"
    READY_FOR_PICKUP = "ready_for_pickup"
    COLLECTED = "collected"
    ON_HOLD = "on_hold"
    CANCELLED = "cancelled"


TERMINAL: frozenset[Stage] = frozenset({Stage.COLLECTED, Stage.CANCELLED})
OPEN: frozenset[Stage] = frozenset(Stage) - TERMINAL
# Cancellation is possible only before work on the device has started.
CANCELLABLE: frozenset[Stage] = frozenset(
    {Stage.RECEIVED, Stage.DIAGNOSING, Stage.AWAITING_APPROVAL, Stage.AWAITING_PARTS}
)
# Stages where a technician works on the device; the queue and "who works on it" rely on this.
BENCH: frozenset[Stage] = frozenset({Stage.DIAGNOSING, Stage.REPAIRING, Stage.QUALITY_CHECK})

# Not staff moves: a job that gets part lines starts waiting for them from any of these stages (a repair
# may find it needs one more part). Recorded as a stage change with reason "parts_added".
PARTS_WAIT_FROM: frozenset[Stage] = frozenset(
    {
        Stage.RECEIVED,
        Stage.DIAGNOSING,
        Stage.AWAITING_APPROVAL,
        Stage.AWAITING_PARTS,
        Stage.REPAIRING,
        Stage.QUALITY_CHECK,
    }
)

_ALL = frozenset(Role)
_BENCH_ROLES = frozenset({Role.TECHNICIAN, Role.MANAGER})
_DESK_ROLES = frozenset({Role.FRONT_DESK, Role.MANAGER})

S = Stage
# (from, to) -> roles. `on_hold` and `cancelled` moves are added below from OPEN / CANCELLABLE.
TRANSITIONS: dict[tuple[Stage, Stage], frozenset[Role]] = {
    (S.RECEIVED, S.DIAGNOSING): _BENCH_ROLES,
    (S.DIAGNOSING, S.AWAITING_APPROVAL): _BENCH_ROLES,
    # Skipping approval: only with an estimate within the pre-approved budget (checked on the job).
    (S.DIAGNOSING, S.AWAITING_PARTS): _BENCH_ROLES,
    (S.DIAGNOSING, S.REPAIRING): _BENCH_ROLES,
    # Impossible repair: the device goes back unrepaired.
    (S.DIAGNOSING, S.READY_FOR_PICKUP): _BENCH_ROLES,
    (S.AWAITING_APPROVAL, S.AWAITING_PARTS): _ALL,
    (S.AWAITING_APPROVAL, S.REPAIRING): _BENCH_ROLES,
    # Declined estimate: the device goes back unrepaired.
    (S.AWAITING_APPROVAL, S.READY_FOR_PICKUP): _ALL,
    (S.AWAITING_PARTS, S.REPAIRING): _BENCH_ROLES,
    (S.REPAIRING, S.QUALITY_CHECK): _BENCH_ROLES,
    # The repair found it needs another part.
    (S.REPAIRING, S.AWAITING_PARTS): _BENCH_ROLES,
    (S.REPAIRING, S.READY_FOR_PICKUP): _BENCH_ROLES,  # only as not_repaired
    (S.QUALITY_CHECK, S.REPAIRING): _BENCH_ROLES,  # failed check: back to the bench
    (S.QUALITY_CHECK, S.READY_FOR_PICKUP): _BENCH_ROLES,
    # The pickup guard (code, identity) will sit in `RepairJob._precondition_failure`.
    (S.READY_FOR_PICKUP, S.COLLECTED): _DESK_ROLES,
}
for _stage in OPEN - {S.ON_HOLD}:
    TRANSITIONS[(_stage, S.ON_HOLD)] = _ALL
    # Leaving on_hold returns to the stage the job was held from (checked on the job).
    TRANSITIONS[(S.ON_HOLD, _stage)] = _ALL
for _stage in CANCELLABLE:
    TRANSITIONS[(_stage, S.CANCELLED)] = _DESK_ROLES
TRANSITIONS[(S.ON_HOLD, S.CANCELLED)] = _DESK_ROLES  # when held from a cancellable stage


_TARGETS: dict[Stage, tuple[Stage, ...]] = {
    stage: tuple(to for (frm, to) in TRANSITIONS if frm is stage) for stage in Stage
}


def targets(stage: Stage) -> tuple[Stage, ...]:
    """Every stage reachable from `stage` in one move, whatever the job or role."""
    return _TARGETS[stage]


def roles_for(frm: Stage, to: Stage) -> frozenset[Role]:
    return TRANSITIONS.get((frm, to), frozenset())
