from tests.api.helpers import create_job, move
from tests.conftest import Api


async def test_intake_then_diagnose(api: Api) -> None:
    job = await create_job(api)
    assert job["ref"].startswith("AT-")
    job = await move(api, "tech.valence", job, "diagnosing")
    assert job["stage"] == "diagnosing"
    assert job["technician"] == "tech.valence"
