"""Builders for repair jobs in a known stage, shared by the rule tests and the state machine."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from domain.model import (
    Actor,
    Customer,
    Device,
    EstimateLine,
    FaultCategory,
    HandOver,
    LineKind,
    RepairJob,
    Tier,
)
from domain.stages import Role, Stage

NOW = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
LATER = NOW + timedelta(hours=1)

DESK = Actor(1, "dana.desk", Role.FRONT_DESK, 1)
TECH = Actor(2, "theo.tech", Role.TECHNICIAN, 1)
OTHER_TECH = Actor(3, "tina.tech", Role.TECHNICIAN, 1)
MANAGER = Actor(4, "max.manager", Role.MANAGER, 1)
CHAIN_MANAGER = Actor(5, "chloe.chain", Role.MANAGER, None)


def estimate(*prices_cents: int) -> list[EstimateLine]:
    """One part line per price (a screen at 89.00 is `estimate(8900)`)."""
    return [EstimateLine(LineKind.PART, f"part {i}", 1, price) for i, price in enumerate(prices_cents)]


def make_job(**overrides: object) -> RepairJob:
    fields: dict[str, object] = {
        "id": None,
        "branch_id": 1,
        "customer": Customer(10, "Camille Martin", "+33612345678"),
        "device": Device("Apple", "iPhone 13", imei="490154203237518"),
        "fault_category": FaultCategory.SCREEN,
        "fault_description": "cracked screen",
        "tier": Tier.STANDARD,
        "due_at": NOW + timedelta(days=3),
        "created_at": NOW,
        "updated_at": NOW,
        "has_passcode": True,
    }
    fields.update(overrides)
    return RepairJob(**fields)  # type: ignore[arg-type]


def drive_to(job: RepairJob, stage: Stage) -> RepairJob:
    """Move a fresh job to `stage` along an ordinary path (estimate 120.00, approved by the customer)."""
    path = {
        Stage.RECEIVED: [],
        Stage.DIAGNOSING: [Stage.DIAGNOSING],
        Stage.AWAITING_APPROVAL: [Stage.DIAGNOSING, Stage.AWAITING_APPROVAL],
        Stage.AWAITING_PARTS: [Stage.DIAGNOSING, Stage.AWAITING_APPROVAL, Stage.AWAITING_PARTS],
        Stage.REPAIRING: [Stage.DIAGNOSING, Stage.AWAITING_APPROVAL, Stage.REPAIRING],
        Stage.QUALITY_CHECK: [Stage.DIAGNOSING, Stage.AWAITING_APPROVAL, Stage.REPAIRING, Stage.QUALITY_CHECK],
        Stage.READY_FOR_PICKUP: [
            Stage.DIAGNOSING,
            Stage.AWAITING_APPROVAL,
            Stage.REPAIRING,
            Stage.QUALITY_CHECK,
            Stage.READY_FOR_PICKUP,
        ],
        Stage.COLLECTED: [
            Stage.DIAGNOSING,
            Stage.AWAITING_APPROVAL,
            Stage.REPAIRING,
            Stage.QUALITY_CHECK,
            Stage.READY_FOR_PICKUP,
            Stage.COLLECTED,
        ],
        Stage.ON_HOLD: [Stage.ON_HOLD],
        Stage.CANCELLED: [Stage.CANCELLED],
    }[stage]
    for to in path:
        if to is Stage.AWAITING_APPROVAL:
            job.set_estimate(TECH, estimate(12000), NOW, None)
        if job.stage is Stage.AWAITING_APPROVAL:
            job.record_approval(DESK, True, NOW, None)
        if to is Stage.COLLECTED:  # not a move: the hand-over, the customer's pickup code checked
            job.hand_over(DESK, HandOver(code_checked=True), NOW)
            continue
        actor = DESK if to is Stage.CANCELLED else TECH
        job.transition(actor, to, NOW)
    assert job.stage is stage
    return job
