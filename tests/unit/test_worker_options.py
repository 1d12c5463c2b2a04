"""What `atelier worker` hands to arq, from the settings."""

from __future__ import annotations

from service.settings import Settings
from workers.settings import worker_options


def test_the_worker_runs_as_many_tasks_at_once_as_configured() -> None:
    assert worker_options(Settings(redis_url="redis://127.0.0.1:6379/0"))["max_jobs"] == 50
    configured = Settings(redis_url="redis://127.0.0.1:6379/0", worker_max_jobs=7, worker_job_timeout_seconds=30)
    options = worker_options(configured)
    assert (options["max_jobs"], options["job_timeout"]) == (7, 30)
