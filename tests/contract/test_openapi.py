"""Schemathesis against the live OpenAPI schema: every operation, all of Schemathesis' default checks.

The schema is the one the app serves at `/schema/openapi.json`. Requests go through the whole ASGI stack (auth,
exception handlers, the database, a supplier on the sandbox) as one of four staff users, drawn per request: a
chain-wide manager, a branch manager, a front desk and a technician. Every answer is checked: no 5xx; a
documented status code, content type, headers and body; schema-invalid data refused, schema-valid data accepted;
authentication enforced where the schema declares it; `Allow` right.

Path parameters name the seeded jobs, lines, orders and suppliers half the time (a made-up reference only ever
reaches the 404 branch), and half the valid changes of a job carry its current ETag, so the handlers' own paths
run too. The run is derandomized: CI repeats it exactly.

    ATELIER_TEST_REDIS=... uv run pytest -q tests/contract -p no:cacheprovider --durations=5
"""

from __future__ import annotations

import hashlib
from collections import Counter, defaultdict
from typing import Any

import pytest
import schemathesis
from hypothesis import strategies as st
from schemathesis import AuthContext
from schemathesis import Case as AnyCase
from schemathesis.hooks import HookContext

from integrations.webhooks import sign as sign_webhook
from tests.contract.harness import SLOT, served_schema
from tests.contract.world import USERS, WEBHOOK_SECRET, World, imei

MAX_EXAMPLES = 40  # per operation and generation mode, besides the examples and coverage phases

# Schemathesis' default for "valid data is accepted", and what some operations answer to schema-valid requests for
# reasons JSON Schema cannot state. Each is documented on the operation; nothing else is tolerated.
ACCEPTED = ["2xx", "3xx", "401", "403", "404", "409", "429", "5xx"]
IF_MATCH = ["412", "428"]  # the job's current ETag is required (428 without), a stale one is 412
REFUSED_THOUGH_VALID: dict[str, list[str]] = {
    # phone number, IMEI check digit, serial number and email shapes; a chain-wide manager names the branch
    "POST /api/v1/jobs": ["422"],
    "GET /api/v1/jobs": ["422"],  # the cursor is an opaque token the API returned
    "POST /api/v1/jobs/{ref}/transitions": [*IF_MATCH, "422"],  # an outcome goes with some moves only
    "PUT /api/v1/jobs/{ref}/estimate": [*IF_MATCH, "422"],  # a part line's SKU is in the catalogue
    "POST /api/v1/jobs/{ref}/approval": IF_MATCH,
    "POST /api/v1/jobs/{ref}/assignment": [*IF_MATCH, "422"],  # an active technician of the job's branch
    "POST /api/v1/jobs/{ref}/notes": IF_MATCH,
    "POST /api/v1/jobs/{ref}/parts": ["412", "422"],  # If-Match is optional here; the SKU is in the catalogue
    "POST /api/v1/jobs/{ref}/pickup": ["412"],  # If-Match is optional here
    "POST /api/v1/jobs/{ref}/parts/{line_id}/order": ["422"],  # an active supplier
    "POST /api/v1/supplier-orders/{order_id}/receipts": ["422"],  # the lines named are the order's
    # a chain-wide manager names the branch
    "GET /api/v1/queue": ["422"],
    "GET /api/v1/express/capacity": ["422"],
    "GET /api/v1/pickup/lookup": ["422"],  # the pickup code or the reference: exactly one of the two
    # a base URL the app may call (scheme, host, no credentials, not a private address)
    "POST /api/v1/suppliers": ["422"],
    "PATCH /api/v1/suppliers/{supplier_id}": ["422"],
    "PUT /api/v1/suppliers/{supplier_id}/skus/{supplier_sku}": ["422"],  # our SKU is in the catalogue
    # the body, a Standard Webhooks event, is read from the raw bytes once the signature is checked: undocumented
    "POST /api/v1/webhooks/suppliers/{supplier_id}": ["400"],
}

CONFIG = schemathesis.Config.from_dict(
    {
        "seed": 20261123,
        "cache": {"enabled": False},
        "generation": {"max-examples": MAX_EXAMPLES, "deterministic": True, "database": "none"},
        "operations": [
            *(
                {
                    "include-name": name,
                    "checks": {"positive_data_acceptance": {"expected-statuses": [*ACCEPTED, *statuses]}},
                }
                for name, statuses in REFUSED_THOUGH_VALID.items()
            ),
            # Two short strings before an argon2 check (a tenth of a second each, on purpose): fewer examples do.
            {"include-name": "POST /api/v1/auth/token", "generation": {"max-examples": 15}},
        ],
    }
)


Case = AnyCase[Any]

schema = schemathesis.openapi.from_dict(served_schema(), config=CONFIG)
schema.app = SLOT


def _draw(case: Case, salt: str) -> int:
    """A number drawn from what was generated, so a replayed (or shrunk) case draws the same."""
    drawn = repr((salt, case.path_parameters, case.query, case.headers, case.body)).encode()
    return int.from_bytes(hashlib.sha256(drawn).digest()[:4], "big")


def caller(case: Case) -> str:
    return USERS[_draw(case, "caller") % len(USERS)]


# --- path parameters that exist ----------------------------------------------------------------------------


def _existing(world: World, names: frozenset[str]) -> list[dict[str, Any]]:
    """Path parameters naming things that exist, for an operation with these parameters."""
    known: dict[frozenset[str], list[dict[str, Any]]] = {
        frozenset({"ref"}): [{"ref": ref} for ref in world.refs],
        frozenset({"ref", "line_id"}): [{"ref": world.refs[world.line_job], "line_id": i} for i in world.line_ids],
        frozenset({"order_id"}): [{"order_id": i} for i in world.order_ids],
        frozenset({"supplier_id"}): [{"supplier_id": i} for i in world.supplier_ids],
        frozenset({"supplier_id", "supplier_sku"}): [
            {"supplier_id": i, "supplier_sku": sku} for i in world.supplier_ids for sku in world.skus
        ],
        frozenset({"customer_id"}): [{"customer_id": i} for i in world.customer_ids],
        frozenset({"code"}): [{"code": code} for code in world.branches],
        frozenset({"sku"}): [{"sku": sku} for sku in world.skus],
        frozenset({"token"}): [{"token": token} for token in world.tracking_tokens],
    }
    return known.get(names, [])


@schema.hook
def flatmap_path_parameters(context: HookContext, path_parameters: dict[str, Any]) -> st.SearchStrategy[Any]:
    world = SLOT.world
    if world is None or not path_parameters:
        return st.just(path_parameters)
    assert context.operation is not None
    declared = {p.name: p.definition.get("schema", {}).get("type") for p in context.operation.path_parameters}
    existing = []
    for known in _existing(world, frozenset(path_parameters)):
        # In the declared types (the webhook's supplier id is text); a deliberately invalid value stays invalid.
        typed = {name: str(value) if declared.get(name) == "string" else value for name, value in known.items()}
        if all(type(path_parameters[name]) is type(value) for name, value in typed.items()):
            existing.append(typed)
    if not existing:
        return st.just(path_parameters)
    return st.one_of(st.just(path_parameters), st.sampled_from(existing))


# --- credentials -------------------------------------------------------------------------------------------

STAFF = "staff:"  # stands for a user's token in the cases Schemathesis builds before the users are signed in


@schema.auth(refresh_interval=None, retry_on=[])
class StaffToken:
    """Credentials on every case, except those Schemathesis generates to test missing or bad ones (it leaves those
    alone): one of the staff users, drawn per case. Some cases are built at collection, before the users are
    signed in, so the header names the user and `sign` puts the user's token in."""

    def get(self, case: Case, context: AuthContext) -> str:
        return caller(case)

    def set(self, case: Case, data: str, context: AuthContext) -> None:
        case.headers["Authorization"] = f"Bearer {STAFF}{data}"


def sign(case: Case, world: World) -> None:
    authorization = str(case.headers.get("Authorization", ""))
    if authorization.startswith(f"Bearer {STAFF}"):
        case.headers["Authorization"] = world.headers(authorization.removeprefix(f"Bearer {STAFF}"))["Authorization"]


# --- realistic where random data never is ------------------------------------------------------------------

WEBHOOK = "POST /api/v1/webhooks/suppliers/{supplier_id}"


def steer(case: Case, world: World) -> None:
    """Half the valid cases are made realistic where random data never is, so the handlers' paths run too: a
    job's change names the job's current version, a hand-over the customer's code, an intake a real phone number
    and IMEI, a push to a supplier's webhook is signed with its secret. What was valid stays valid."""
    if case.meta is None or not case.meta.generation.mode.is_positive or _draw(case, "steer") % 2:
        return
    headers = case.headers
    ref = (case.path_parameters or {}).get("ref")
    if "If-Match" in headers and ref in world.refs:
        headers["If-Match"] = world.etag(ref)
    if ref == world.ready_ref and isinstance(case.body, dict) and isinstance(case.body.get("code"), str):
        case.body["code"] = world.pickup_codes[0]  # the hand-over itself, once
    if case.operation.label == "POST /api/v1/jobs" and isinstance(case.body, dict):
        customer, device = case.body.get("customer"), case.body.get("device")
        if isinstance(customer, dict) and isinstance(device, dict):
            n = _draw(case, "intake") % 100
            customer.update(phone=f"06 12 34 56 {n:02d}", email=None)
            device.update(imei=imei(n), serial_number=None)
    if case.operation.label == WEBHOOK and str((case.path_parameters or {}).get("supplier_id")) in map(
        str, world.supplier_ids
    ):
        # Its body is not documented (Standard Webhooks events), so none is sent: the signature is on no bytes.
        webhook_id = f"msg_{_draw(case, 'webhook'):08x}"
        timestamp = int(SLOT.clock().timestamp())
        signature = sign_webhook(WEBHOOK_SECRET, webhook_id, timestamp, b"")
        headers.update({"webhook-id": webhook_id, "webhook-timestamp": str(timestamp), "webhook-signature": signature})


# --- the run -----------------------------------------------------------------------------------------------


ANSWERS: dict[str, Counter[int]] = defaultdict(Counter)  # per operation, the statuses of its own requests


@schema.parametrize()
def test_operation_honours_the_schema(case: Case, world: World) -> None:
    sign(case, world)
    steer(case, world)
    response = case.call_and_validate()
    if case.method.upper() == case.operation.method.upper():  # not a probe with another method
        ANSWERS[case.operation.label][response.status_code] += 1


def test_the_fuzzing_reached_the_handlers() -> None:
    """The run above is worth something only if its requests got in: every operation answered at least once with
    something else than 401 (the staff tokens work everywhere), and most succeeded at least once (the seeded
    world and the steering work). Runs after it, being defined after it."""
    if not ANSWERS:
        pytest.skip("the operations were deselected")
    locked_out = sorted(label for label, statuses in ANSWERS.items() if set(statuses) <= {401})
    assert not locked_out, f"never past authentication: {locked_out}"
    succeeded = [label for label, statuses in ANSWERS.items() if any(200 <= status < 300 for status in statuses)]
    assert len(succeeded) >= len(ANSWERS) / 2, {label: dict(statuses) for label, statuses in ANSWERS.items()}
