"""The parts catalogue: POST/GET/PUT /api/v1/parts. Managers change it; every member of staff reads it."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.api.helpers import assert_problem
from tests.conftest import Api

PARTS = "/api/v1/parts"

SCREEN = {
    "sku": "IPH13-SCREEN-OLED",
    "description": "iPhone 13 OLED display assembly",
    "models": ["iPhone 13"],
}
BATTERY = {
    "sku": "IPH13-BATTERY",
    "description": "iPhone 13 battery, 3227 mAh",
    "models": ["iPhone 13"],
}
S22_SCREEN = {
    "sku": "SAM-S22-SCREEN",
    "description": "Galaxy S22 AMOLED display with frame",
    "models": ["Galaxy S22", "Galaxy S22+"],
}


async def _post(api: Api, body: Any, user: str = "manager") -> httpx.Response:
    return await api.client.post(PARTS, json=body, headers=await api.login(user))


async def add_part(api: Api, body: dict[str, Any], user: str = "manager") -> dict[str, Any]:
    response = await _post(api, body, user)
    assert response.status_code == 201, response.text
    part: dict[str, Any] = response.json()
    return part


async def _list(api: Api, user: str = "desk.valence", **params: Any) -> list[str]:
    response = await api.client.get(PARTS, params=params, headers=await api.login(user))
    assert response.status_code == 200, response.text
    return [part["sku"] for part in response.json()]


async def _get(api: Api, sku: str, user: str = "desk.valence") -> httpx.Response:
    return await api.client.get(f"{PARTS}/{sku}", headers=await api.login(user))


# --- adding parts ------------------------------------------------------------------------------


@pytest.mark.parametrize("user", ["manager", "manager.valence"])
async def test_manager_adds_a_part_201_with_location(api: Api, user: str) -> None:
    response = await _post(api, SCREEN, user)
    assert response.status_code == 201, response.text
    assert response.json() == SCREEN
    assert response.headers["location"] == f"{PARTS}/IPH13-SCREEN-OLED"
    fetched = await api.client.get(response.headers["location"], headers=await api.login("desk.valence"))
    assert fetched.status_code == 200, fetched.text
    assert fetched.json() == SCREEN


@pytest.mark.parametrize("user", ["desk.valence", "tech.valence", "desk.guilherand", "tech.guilherand"])
async def test_only_a_manager_adds_parts_others_get_403(api: Api, user: str) -> None:
    response = await _post(api, SCREEN, user)
    problem = assert_problem(response, 403)
    assert "manager" in problem["detail"]
    assert await _list(api, "manager") == []


async def test_sku_is_normalised_to_upper_case(api: Api) -> None:
    part = await add_part(api, {**SCREEN, "sku": "  iph13-Screen-oled "})
    assert part["sku"] == "IPH13-SCREEN-OLED"
    # Found under its normal form, and under any casing staff may type.
    assert (await _get(api, "IPH13-SCREEN-OLED")).json()["sku"] == "IPH13-SCREEN-OLED"
    lower = await _get(api, "iph13-screen-oled")
    assert lower.status_code == 200, lower.text
    assert lower.json() == SCREEN
    assert await _list(api) == ["IPH13-SCREEN-OLED"]


async def test_duplicate_sku_is_409_problem(api: Api) -> None:
    await add_part(api, SCREEN)
    again = await _post(api, {**SCREEN, "sku": "iph13-screen-oled", "description": "another description"})
    problem = assert_problem(again, 409)
    assert "IPH13-SCREEN-OLED" in problem["detail"]
    # The first one is untouched.
    assert (await _get(api, "IPH13-SCREEN-OLED")).json() == SCREEN


@pytest.mark.parametrize(
    "sku",
    ["", "has space", "SCREEN/OLED", "-LEADING-DASH", "X" * 65, "ÉCRAN", "semi;colon"],
    ids=["empty", "space", "slash", "leading-dash", "too-long", "non-ascii", "semicolon"],
)
async def test_bad_sku_is_422_naming_sku(api: Api, sku: str) -> None:
    assert_problem(await _post(api, {**SCREEN, "sku": sku}), 422, "sku")
    assert await _list(api, "manager") == []


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"sku": "IPH13-BATTERY", "models": ["iPhone 13"]}, "description"),
        ({"sku": "IPH13-BATTERY", "description": "   "}, "description"),
        ({"sku": "IPH13-BATTERY", "description": "x" * 201}, "description"),
        ({"description": "battery"}, "sku"),
        ({**BATTERY, "price_cents": 3200}, "price_cents"),
        ({**BATTERY, "created_at": "2026-01-01T00:00:00Z"}, "created_at"),
        ({**BATTERY, "models": "iPhone 13"}, "models"),
    ],
    ids=[
        "missing-description",
        "blank-description",
        "long-description",
        "missing-sku",
        "unknown-field",
        "unknown-field-created_at",
        "models-not-a-list",
    ],
)
async def test_invalid_part_is_422_naming_the_field(api: Api, body: dict[str, Any], field: str) -> None:
    assert_problem(await _post(api, body), 422, field)
    assert await _list(api, "manager") == []


async def test_models_default_to_empty(api: Api) -> None:
    part = await add_part(api, {"sku": "GENERIC-ADHESIVE", "description": "Display adhesive strips"})
    assert part == {"sku": "GENERIC-ADHESIVE", "description": "Display adhesive strips", "models": []}


# --- reading -----------------------------------------------------------------------------------


async def test_list_is_ordered_by_sku_and_readable_by_all_branches(api: Api) -> None:
    for body in (SCREEN, S22_SCREEN, BATTERY):
        await add_part(api, body)
    for user in ("desk.valence", "tech.valence", "desk.guilherand", "tech.guilherand", "manager"):
        response = await api.client.get(PARTS, headers=await api.login(user))
        assert response.status_code == 200, response.text
        assert response.json() == [BATTERY, SCREEN, S22_SCREEN]


async def test_list_q_searches_sku_and_description_case_insensitively(api: Api) -> None:
    for body in (SCREEN, S22_SCREEN, BATTERY):
        await add_part(api, body)
    assert await _list(api, q="screen") == ["IPH13-SCREEN-OLED", "SAM-S22-SCREEN"]  # in the SKU
    assert await _list(api, q="AMOLED") == ["SAM-S22-SCREEN"]  # in the description only
    assert await _list(api, q="mah") == ["IPH13-BATTERY"]
    assert await _list(api, q="iph13") == ["IPH13-BATTERY", "IPH13-SCREEN-OLED"]
    assert await _list(api, q="pixel") == []


async def test_list_q_wildcards_are_literal(api: Api) -> None:
    await add_part(api, SCREEN)
    await add_part(api, {"sku": "PCT-TOOL", "description": "Opening tool, 100% steel"})
    await add_part(api, {"sku": "UNDER_SCORE", "description": "Part with an underscore"})
    assert await _list(api, q="%") == ["PCT-TOOL"]
    assert await _list(api, q="_") == ["UNDER_SCORE"]
    assert await _list(api, q="13%") == []


async def test_list_model_filter(api: Api) -> None:
    for body in (SCREEN, S22_SCREEN, BATTERY):
        await add_part(api, body)
    assert await _list(api, model="iPhone 13") == ["IPH13-BATTERY", "IPH13-SCREEN-OLED"]
    assert await _list(api, model="galaxy s22+") == ["SAM-S22-SCREEN"]
    assert await _list(api, model="Pixel 8") == []
    # Both filters together.
    assert await _list(api, q="screen", model="iPhone 13") == ["IPH13-SCREEN-OLED"]
    assert await _list(api, q="battery", model="Galaxy S22") == []


async def test_list_limit_applies_to_the_filtered_parts(api: Api) -> None:
    """`limit` bounds the answer, not the parts looked at before filtering by model."""
    for body in (SCREEN, S22_SCREEN, BATTERY):
        await add_part(api, body)
    assert await _list(api, limit=2) == ["IPH13-BATTERY", "IPH13-SCREEN-OLED"]
    # SAM-S22-SCREEN sorts last: the first part of the S22 list is still that one.
    assert await _list(api, model="Galaxy S22", limit=1) == ["SAM-S22-SCREEN"]


@pytest.mark.parametrize(
    "params",
    [{"q": ""}, {"model": ""}, {"limit": 0}, {"limit": 501}, {"q": "x" * 101}, {"q": "a\x00b"}],
    ids=["empty-q", "empty-model", "limit-0", "limit-501", "long-q", "nul-q"],
)
async def test_list_bad_query_is_422_naming_the_parameter(api: Api, params: dict[str, Any]) -> None:
    response = await api.client.get(PARTS, params=params, headers=await api.login("desk.valence"))
    (field,) = params
    assert_problem(response, 422, field)


async def test_unknown_part_is_404_problem(api: Api) -> None:
    await add_part(api, SCREEN)
    problem = assert_problem(await _get(api, "IPH99-SCREEN"), 404)
    assert "IPH99-SCREEN" in problem["detail"]


async def test_get_with_a_malformed_sku_is_a_problem_not_a_500(api: Api) -> None:
    response = await _get(api, "bad%20sku")
    assert_problem(response, 422, "sku")


# --- updating ----------------------------------------------------------------------------------


async def test_manager_updates_description_and_models(api: Api) -> None:
    await add_part(api, SCREEN)
    change = {"description": "iPhone 13 OLED display, refurbished", "models": ["iPhone 13", "iPhone 13 Pro"]}
    response = await api.client.put(f"{PARTS}/iph13-screen-oled", json=change, headers=await api.login("manager"))
    assert response.status_code == 200, response.text
    expected = {"sku": "IPH13-SCREEN-OLED", **change}
    assert response.json() == expected
    assert (await _get(api, "IPH13-SCREEN-OLED", "tech.guilherand")).json() == expected
    assert await _list(api, model="iPhone 13 Pro") == ["IPH13-SCREEN-OLED"]


async def test_update_replaces_models(api: Api) -> None:
    await add_part(api, S22_SCREEN)
    response = await api.client.put(
        f"{PARTS}/SAM-S22-SCREEN", json={"description": "Galaxy S22 display"}, headers=await api.login("manager")
    )
    assert response.status_code == 200, response.text
    assert response.json() == {"sku": "SAM-S22-SCREEN", "description": "Galaxy S22 display", "models": []}


@pytest.mark.parametrize("user", ["desk.valence", "tech.valence", "tech.guilherand"])
async def test_only_a_manager_updates_parts_others_get_403(api: Api, user: str) -> None:
    await add_part(api, SCREEN)
    response = await api.client.put(
        f"{PARTS}/IPH13-SCREEN-OLED", json={"description": "changed"}, headers=await api.login(user)
    )
    assert_problem(response, 403)
    assert (await _get(api, "IPH13-SCREEN-OLED")).json() == SCREEN


async def test_update_of_an_unknown_part_is_404_and_creates_nothing(api: Api) -> None:
    response = await api.client.put(
        f"{PARTS}/IPH99-SCREEN", json={"description": "not there"}, headers=await api.login("manager")
    )
    assert_problem(response, 404)
    assert await _list(api, "manager") == []


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"models": ["iPhone 13"]}, "description"),
        ({"description": ""}, "description"),
        ({"description": "ok", "sku": "OTHER-SKU"}, "sku"),
        ({"description": "ok", "models": [""]}, "models"),
    ],
    ids=["missing-description", "empty-description", "sku-in-body", "empty-model"],
)
async def test_invalid_update_is_422_and_changes_nothing(api: Api, body: dict[str, Any], field: str) -> None:
    await add_part(api, SCREEN)
    response = await api.client.put(f"{PARTS}/IPH13-SCREEN-OLED", json=body, headers=await api.login("manager"))
    problem = assert_problem(response, 422)
    assert any(error["field"].startswith(field) for error in problem["errors"]), problem
    assert (await _get(api, "IPH13-SCREEN-OLED")).json() == SCREEN
