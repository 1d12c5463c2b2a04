"""What Schemathesis found, kept as explicit cases: each is sent through the live schema's operation and its answer
checked like a fuzzed one (no 5xx, documented status, content type and body), plus the status it must have.
Fuzzing draws differently as the schema and the seeded world change; these stay."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
import schemathesis

from tests.contract.harness import SLOT, served_schema
from tests.contract.world import World

schema = schemathesis.openapi.from_dict(
    served_schema(), config=schemathesis.Config.from_dict({"cache": {"enabled": False}})
)
schema.app = SLOT

FORM = "application/x-www-form-urlencoded"


@dataclass(frozen=True)
class Found:
    why: str
    operation: str
    user: str
    status: int
    path: Callable[[World], dict[str, Any]] = lambda _: {}
    headers: dict[str, str] = field(default_factory=dict)
    body: Any = None
    media_type: str = "application/json"


FOUND = [
    # A staff ETA with a fraction of a second made `late_by` a duration JSON Schema refuses ("PT1.5S").
    Found(
        "late_by is whole seconds",
        "PATCH /api/v1/jobs/{ref}/parts/{line_id}",
        "tech.valence",
        200,
        lambda w: {"ref": w.refs[w.line_job], "line_id": w.line_ids[0]},
        body={"eta": "2027-01-15T10:00:00.5+01:00"},
    ),
    Found("late_by on the late list too", "GET /api/v1/parts/late", "manager", 200),
    # A supplier's API key goes into an HTTP header: any other text made every quote and order a 500.
    Found(
        "an API key is visible ASCII",
        "POST /api/v1/suppliers",
        "manager",
        422,
        body={"name": "Clé", "adapter": "rest_json", "base_url": "http://127.0.0.1:9", "api_key": "clé-secrète"},
    ),
    # parse_qs' field limit raised a ValueError: 500.
    Found(
        "a form with too many fields is 400",
        "POST /track/{token}/approval",
        "manager",
        400,
        lambda w: {"token": w.tracking_tokens[0]},
        body={f"field{n}": "x" for n in range(11)},
        media_type=FORM,
    ),
    # Unknown fields of the page's form were ignored, those of the same answer in JSON refused.
    Found(
        "an unknown form field is refused",
        "POST /track/{token}/approval",
        "manager",
        422,
        lambda w: {"token": w.tracking_tokens[0]},
        body={"approved": "true", "stage": "collected"},
        media_type=FORM,
    ),
    # Lax validation took `false` for 0 cents.
    Found(
        "a boolean is not a number",
        "PUT /api/v1/jobs/{ref}/estimate",
        "tech.valence",
        422,
        lambda w: {"ref": w.refs[0]},
        headers={"If-Match": '"v1"'},
        body={"lines": [{"kind": "part", "description": "screen", "unit_price_cents": False}]},
    ),
    # 5.0 is a whole number in JSON Schema; the branch's capacity refused it.
    Found(
        "a whole number may be written 5.0",
        "PATCH /api/v1/branches/{code}",
        "manager.valence",
        200,
        lambda _: {"code": "valence"},
        body={"express_capacity": 5.0},
    ),
    # An empty If-Match, optional on the hand-over, answered 428 "send If-Match".
    Found(
        "a blank optional If-Match guards nothing",
        "POST /api/v1/jobs/{ref}/pickup",
        "desk.valence",
        403,  # the wrong code, checked as if no If-Match had been sent
        lambda w: {"ref": w.ready_ref},
        headers={"If-Match": ""},
        body={"code": "ABCD-EFGH"},
    ),
]


@pytest.mark.parametrize("found", FOUND, ids=[found.why for found in FOUND])
def test_found_by_fuzzing(found: Found, world: World) -> None:
    operation = schema.find_operation_by_label(found.operation)
    assert operation is not None, found.operation
    case = operation.Case(
        path_parameters=found.path(world), headers=found.headers, body=found.body, media_type=found.media_type
    )
    response = case.call_and_validate(headers=world.headers(found.user))
    assert response.status_code == found.status, response.text


@pytest.mark.parametrize("path", ["/api/v1/jobs", "/api/v1/parts", "/api/v1/suppliers", "/api/v1/branches/valence"])
def test_options_lists_every_method_of_the_path(path: str, world: World) -> None:
    # Litestar 2 listed only the first handler's methods (litestar#4169): `OPTIONS, POST` on /api/v1/jobs.
    assert world.client is not None
    allowed = {method.strip() for method in world.client.options(path).headers["Allow"].split(",")}
    methods = {method.upper() for method in schema.raw_schema["paths"][path.replace("valence", "{code}")]}
    assert methods | {"OPTIONS"} == allowed
