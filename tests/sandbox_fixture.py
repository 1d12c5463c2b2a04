"""Pytest plugin: the supplier sandbox (`atelier sandbox supplier`) as a real process, and its controls.

`sandbox` is one process for the whole session; `sandbox_tenant` is a tenant name no other test uses, so
tests share the process but never each other's orders, stock or faults. `running_sandbox(...)` starts an
extra process with other CLI options (e.g. `--api-key`).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[1]
SEED = 42


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class SandboxServer:
    """A running sandbox: its URLs and its admin routes. `tenant=None` is the root (`default`) tenant."""

    url: str
    seed: int
    process: subprocess.Popen[bytes]
    log_path: Path
    client: httpx.Client

    def tenant_url(self, name: str) -> str:
        return f"{self.url}/t/{name}"

    def base(self, tenant: str | None = None) -> str:
        return self.url if tenant is None else self.tenant_url(tenant)

    def output(self) -> str:
        return self.log_path.read_text()

    def _admin(self, method: str, path: str, tenant: str | None, body: Any = None) -> Any:
        response = self.client.request(method, f"{self.base(tenant)}/_sandbox{path}", json=body)
        response.raise_for_status()
        return response.json()

    def faults(self, tenant: str | None = None) -> dict[str, Any]:
        faults: dict[str, Any] = self._admin("GET", "/faults", tenant)
        return faults

    def reset(self, tenant: str | None = None) -> dict[str, Any]:
        answer: dict[str, Any] = self._admin("POST", "/reset", tenant)
        return answer

    def set_faults(self, tenant: str | None = None, **knobs: Any) -> dict[str, Any]:
        faults: dict[str, Any] = self._admin("PUT", "/faults", tenant, knobs)
        return faults

    def advance(self, order_id: str, action: str, tenant: str | None = None, **kw: Any) -> dict[str, Any]:
        """`{"order": ..., "webhook": first attempt | None}`; raises httpx.HTTPStatusError on a refusal (409...)."""
        answer: dict[str, Any] = self._admin("POST", f"/orders/{order_id}/advance", tenant, {"action": action, **kw})
        return answer

    def set_stock(self, sku: str, available: int, tenant: str | None = None) -> dict[str, Any]:
        answer: dict[str, Any] = self._admin("POST", f"/stock/{sku}", tenant, {"available": available})
        return answer

    def configure_webhooks(self, url: str | None, secret: str | None, tenant: str | None = None) -> None:
        self._admin("POST", "/webhooks", tenant, {"url": url, "secret": secret})

    def webhook_log(self, tenant: str | None = None) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = self._admin("GET", "/webhooks/log", tenant)["items"]
        return items


@contextmanager
def running_sandbox(*args: str, seed: int = SEED) -> Iterator[SandboxServer]:
    """Start `atelier sandbox supplier` on a free port, wait until it answers, stop it afterwards."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("ATELIER_")}
    env["PYTHONPATH"] = str(ROOT)
    command = [sys.executable, "-m", "service.cli", "sandbox", "supplier", "--port", str(port), "--seed", str(seed)]
    with tempfile.TemporaryDirectory(prefix="sandbox-") as folder:
        log_path = Path(folder) / "sandbox.log"
        with log_path.open("wb") as out:
            process = subprocess.Popen([*command, *args], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}"
        client = httpx.Client(timeout=30, trust_env=False)
        server = SandboxServer(url, seed, process, log_path, client)
        try:
            _wait_until_up(server)
            yield server
        finally:
            client.close()
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()


def _wait_until_up(server: SandboxServer) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            pytest.fail(f"the sandbox exited early:\n{server.output()}")
        try:
            if server.client.get(f"{server.url}/_sandbox/faults", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    pytest.fail(f"the sandbox never answered:\n{server.output()}")


@pytest.fixture(scope="session")
def sandbox() -> Iterator[SandboxServer]:
    with running_sandbox() as server:
        yield server


@pytest.fixture
def sandbox_tenant() -> str:
    """A tenant nobody else uses: created on first request with the CLI's default faults."""
    return f"t-{uuid.uuid4().hex[:16]}"
