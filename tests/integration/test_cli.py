"""The `atelier` command as a newcomer runs it: real processes, a real SQLite file, real HTTP."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from cryptography.fernet import Fernet
from prometheus_client.parser import text_string_to_metric_families

ATELIER = [sys.executable, "-m", "service.cli"]
DEMO_USERS = ("desk.valence", "tech.valence", "desk.guilherand", "tech.guilherand", "manager")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ATELIER_")}
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[2])
    env.update(extra)
    return env


def run(args: list[str], cwd: Path, stdin: str | None = None, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*ATELIER, *args], cwd=cwd, env=_env(**env), input=stdin, capture_output=True, text=True, timeout=120
    )


@contextmanager
def serving(args: list[str], cwd: Path, **env: str) -> Iterator[tuple[str, list[str]]]:
    """Start `atelier serve`, wait until ready, yield its base URL and (later) its output lines."""
    port = _free_port()
    log = cwd / f"serve-{port}.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [*ATELIER, "serve", "--port", str(port), *args],
            cwd=cwd,
            env=_env(**env),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                pytest.fail(f"serve exited early:\n{log.read_text()}")
            try:
                if httpx.get(f"{base}/health/ready", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        else:
            pytest.fail(f"serve never became ready:\n{log.read_text()}")
        yield base, log.read_text().splitlines()
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()


def token(base: str, username: str, password: str = "atelier-demo") -> str | None:
    response = httpx.post(f"{base}/api/v1/auth/token", json={"username": username, "password": password})
    return response.json()["access_token"] if response.status_code == 200 else None


def all_jobs(base: str, bearer: str) -> list[dict[str, object]]:
    items: list[dict[str, object]] = []
    cursor: str | None = None
    while True:
        params = {"limit": "100", **({"cursor": cursor} if cursor else {})}
        page = httpx.get(f"{base}/api/v1/jobs", params=params, headers={"Authorization": f"Bearer {bearer}"}).json()
        items += page["items"]
        cursor = page["next_cursor"]
        if not cursor:
            return items


def test_serve_demo_seeds_once_and_prints_logins(tmp_path: Path) -> None:
    sandbox = ["--sandbox-port", str(_free_port())]
    with serving(["--demo", *sandbox], tmp_path) as (base, output):
        assert (tmp_path / "atelier.db").exists()
        for username in DEMO_USERS:
            assert any(username in line for line in output), f"{username} not printed"
            assert token(base, username) is not None, f"{username} cannot sign in"
        manager = token(base, "manager")
        assert manager
        first = all_jobs(base, manager)
        assert len(first) >= 12
        assert {job["branch"] for job in first} == {"valence", "guilherand"}
        assert len({job["stage"] for job in first}) >= 6, "demo jobs should be in various stages"
    with serving(["--demo", *sandbox], tmp_path) as (base, _):
        manager = token(base, "manager")
        assert manager
        assert sorted(j["ref"] for j in all_jobs(base, manager)) == sorted(j["ref"] for j in first)  # type: ignore[type-var]
        suppliers = httpx.get(f"{base}/api/v1/suppliers", headers={"Authorization": f"Bearer {manager}"}).json()
        assert len(suppliers) == 3


def test_serve_demo_runs_the_supplier_sandbox_and_its_webhooks(tmp_path: Path) -> None:
    """The demo's suppliers answer over real HTTP, and their signed pushes reach the demo server."""
    sandbox_port = _free_port()
    with serving(["--demo", "--sandbox-port", str(sandbox_port)], tmp_path) as (base, _):
        tech = {"Authorization": f"Bearer {token(base, 'tech.valence')}"}
        waiting = httpx.get(f"{base}/api/v1/jobs", params={"stage": "awaiting_parts"}, headers=tech).json()["items"]
        ref = waiting[0]["ref"]
        line = httpx.get(f"{base}/api/v1/jobs/{ref}/parts", headers=tech).json()["lines"][0]
        quotes = httpx.post(f"{base}/api/v1/jobs/{ref}/parts/{line['id']}/quotes", headers=tech, timeout=30).json()
        assert {q["supplier"] for q in quotes["quotes"]} == {"FastParts", "BudgetParts", "FeedParts"}
        fast = next(q["supplier_id"] for q in quotes["quotes"] if q["supplier"] == "FastParts")
        order = httpx.post(
            f"{base}/api/v1/jobs/{ref}/parts/{line['id']}/order", headers=tech, json={"supplier_id": fast}, timeout=30
        )
        assert order.status_code == 201, order.text
        time.sleep(1.1)  # the supplier stamps facts to the second: a slip after the order, by its clock
        sandbox = f"http://127.0.0.1:{sandbox_port}/t/fastparts"
        supplier_order = order.json()["supplier_ref"]
        slip = httpx.post(f"{sandbox}/_sandbox/orders/{supplier_order}/advance", json={"action": "slip", "hours": 48})
        assert slip.json()["webhook"]["status"] == 200
        history = httpx.get(f"{base}/api/v1/jobs/{ref}/parts", headers=tech).json()["lines"][0]["eta_history"]
        assert [h["source"] for h in history] == ["order", "webhook"]


def test_serve_without_demo_needs_keys_and_seeds_nothing(tmp_path: Path) -> None:
    refused = run(["serve"], tmp_path)
    assert refused.returncode != 0
    assert "ATELIER_PASSCODE_KEYS" in refused.stderr
    keys = {"ATELIER_JWT_SECRET": "s" * 40, "ATELIER_PASSCODE_KEYS": Fernet.generate_key().decode()}
    with serving([], tmp_path, **keys) as (base, _):
        assert token(base, "manager") is None  # no demo logins exist


def test_settings_from_environment_and_host_option(tmp_path: Path) -> None:
    db = tmp_path / "elsewhere" / "shop.db"
    with serving(["--demo", "--host", "127.0.0.1"], tmp_path, ATELIER_DATABASE_URL=f"sqlite+aiosqlite:///{db}") as (
        base,
        _,
    ):
        assert db.exists()
        assert not (tmp_path / "atelier.db").exists()
        assert httpx.get(f"{base}/health/live").json() == {"status": "ok"}


def test_branch_and_user_commands_then_sign_in(tmp_path: Path) -> None:
    keys = {"ATELIER_JWT_SECRET": "s" * 40, "ATELIER_PASSCODE_KEYS": Fernet.generate_key().decode()}
    assert run(["db", "check"], tmp_path).returncode != 0  # pre-start check: no schema yet
    assert run(["db", "upgrade"], tmp_path).returncode == 0
    assert run(["db", "check"], tmp_path).returncode == 0
    made = run(
        ["branch", "create", "--code", "tain", "--name", "Tain", "--hours", "mon-fri 09:00-12:00,14:00-18:00"], tmp_path
    )
    assert made.returncode == 0, made.stderr
    again = run(["branch", "create", "--code", "tain", "--name", "Tain", "--hours", "mon-fri 09:00-18:00"], tmp_path)
    assert again.returncode != 0 and "already exists" in again.stderr
    bad = run(
        ["branch", "create", "--code", "x", "--name", "X", "--timezone", "Mars/Base", "--hours", "mon 9:00-18:00"],
        tmp_path,
    )
    assert bad.returncode != 0
    user = run(
        ["user", "create", "--username", "desk.tain", "--role", "front_desk", "--branch", "tain", "--password-stdin"],
        tmp_path,
        stdin="a-long-password\n",
    )
    assert user.returncode == 0, user.stderr
    nobranch = run(
        ["user", "create", "--username", "t2", "--role", "technician", "--password-stdin"],
        tmp_path,
        stdin="a-long-password\n",
    )
    assert nobranch.returncode != 0
    changed = run(["user", "password", "--username", "desk.tain", "--password-stdin"], tmp_path, stdin="another-pass\n")
    assert changed.returncode == 0, changed.stderr
    nobody = run(["user", "password", "--username", "nobody", "--password-stdin"], tmp_path, stdin="another-pass\n")
    assert nobody.returncode != 0 and "no user nobody" in nobody.stderr
    with serving([], tmp_path, **keys) as (base, _):
        assert token(base, "desk.tain", "another-pass") is not None
        assert token(base, "desk.tain", "a-long-password") is None  # the old password no longer works
        assert token(base, "desk.tain", "wrong-password") is None


def test_passcode_key_rotation(tmp_path: Path) -> None:
    old_key, new_key = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    secret = {"ATELIER_JWT_SECRET": "s" * 40}
    assert run(["db", "upgrade"], tmp_path).returncode == 0
    assert (
        run(
            ["branch", "create", "--code", "tain", "--name", "Tain", "--hours", "mon-sun 08:00-20:00"], tmp_path
        ).returncode
        == 0
    )
    for username, role in (("desk.tain", "front_desk"), ("boss", "manager")):
        made = run(
            ["user", "create", "--username", username, "--role", role, "--branch", "tain", "--password-stdin"],
            tmp_path,
            stdin="a-long-password\n",
        )
        assert made.returncode == 0, made.stderr
    with serving([], tmp_path, ATELIER_PASSCODE_KEYS=old_key, ATELIER_ALLOW_PRIVATE_SUPPLIER_URLS="true", **secret) as (
        base,
        _,
    ):
        desk = {"Authorization": f"Bearer {token(base, 'desk.tain', 'a-long-password')}"}
        body = {
            "customer": {"name": "Ada", "phone": "0612345678"},
            "device": {"brand": "Apple", "model": "iPhone 13", "imei": "490154203237518"},
            "fault": {"category": "screen", "description": "cracked"},
            "tier": "standard",
            "passcode": "2468",
        }
        ref = httpx.post(f"{base}/api/v1/jobs", json=body, headers=desk).json()["ref"]
        boss = {"Authorization": f"Bearer {token(base, 'boss', 'a-long-password')}"}
        supplier = {
            "name": "Acme",
            "adapter": "rest_json",
            "base_url": "http://127.0.0.1:9",
            "api_key": "k-123",
            "webhook_secrets": ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"],
        }
        created = httpx.post(f"{base}/api/v1/suppliers", json=supplier, headers=boss)
        assert created.status_code == 201, created.text
    rotated = run(["passcodes", "rotate"], tmp_path, ATELIER_PASSCODE_KEYS=f"{new_key},{old_key}", **secret)
    assert rotated.returncode == 0, rotated.stderr
    assert "1 passcodes and the secrets of 1 suppliers re-encrypted" in rotated.stdout
    # The old key is gone from the setting: the passcode is still readable under the new one alone.
    with serving([], tmp_path, ATELIER_PASSCODE_KEYS=new_key, **secret) as (base, _):
        boss = {"Authorization": f"Bearer {token(base, 'boss', 'a-long-password')}"}
        assert httpx.get(f"{base}/api/v1/jobs/{ref}/passcode", headers=boss).json() == {"passcode": "2468"}
        # Counting the webhook secrets decrypts them: they too open under the new key alone.
        stored = httpx.get(f"{base}/api/v1/suppliers/{created.json()['id']}", headers=boss).json()
        assert (stored["has_api_key"], stored["webhook_secret_count"]) == (True, 1)


def test_two_server_processes_answer_the_same_metrics(tmp_path: Path) -> None:
    keys = {"ATELIER_JWT_SECRET": "s" * 40, "ATELIER_PASSCODE_KEYS": Fernet.generate_key().decode()}
    with serving(["--workers", "2"], tmp_path, **keys) as (base, _), httpx.Client(base_url=base) as client:
        for _ in range(30):  # spread over both processes by the kernel
            assert client.get("/health/live").status_code == 200
        # Whichever process answers the scrape, it counts every process's requests.
        counted = {_live_requests(client.get("/metrics").text) for _ in range(6)}
    assert counted == {30.0}


def _live_requests(exposition: str) -> float:
    return sum(
        sample.value
        for family in text_string_to_metric_families(exposition)
        for sample in family.samples
        if sample.name == "atelier_requests_total" and sample.labels.get("path") == "/health/live"
    )
