"""SSRF through a supplier's redirects. tests/api/test_suppliers.py refuses private base URLs when saved,
and tests/unit/test_resilience.py a redirect on a mocked transport; here a real local HTTP server stands
for a supplier on the internet that answers every call with a redirect to the shop's own network (a service
on 127.0.0.1, the cloud metadata address 169.254.169.254). Quotes, orders and the workers' poll all go
through the supplier client: the redirect is never followed, the internal service never hears from us,
the answer names the refusal, and nothing is a 500.

The test settings allow private supplier URLs (the "supplier" listens on 127.0.0.1): what is checked here is
the redirect, which must not be followed whatever the base URL is."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from service.services import Services
from service.usecases import polling
from tests.api.helpers import assert_problem
from tests.api.parts_helpers import MANAGER, SKU, SUPPLIERS, add_part, job_parts, job_with_lines, line_of, order, quotes
from tests.conftest import Api, FakeClock


@dataclass
class Server:
    """A local HTTP server; `redirect` (status, location) makes it answer every request with it."""

    url: str
    hits: list[str] = field(default_factory=list)
    redirect: tuple[int, str] | None = None


@pytest.fixture
def serve() -> Iterator[Any]:
    servers: list[ThreadingHTTPServer] = []

    def start(redirect: tuple[int, str] | None = None) -> Server:
        holder: dict[str, Server] = {}

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                server = holder["server"]
                server.hits.append(f"{self.command} {self.path}")
                if server.redirect is not None:
                    status, location = server.redirect
                    self.send_response(status)
                    self.send_header("Location", location + self.path)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                body = b'{"secret": "instance credentials"}'
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_PUT = do_DELETE = _answer

            def log_message(self, format: str, *args: Any) -> None:
                return  # quiet

        httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        servers.append(httpd)
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
        holder["server"] = Server(f"http://127.0.0.1:{httpd.server_address[1]}", redirect=redirect)
        return holder["server"]

    yield start
    for httpd in servers:
        httpd.shutdown()
        httpd.server_close()


REDIRECTS = {
    "302 to a service on loopback": (302, "internal"),
    "307 to a service on loopback": (307, "internal"),
    "308 to the cloud metadata address": (308, "http://169.254.169.254"),
    "301 to the metadata address, IPv4-mapped": (301, "http://[::ffff:169.254.169.254]"),
    "303 to localhost by name": (303, "localhost"),
}


def _target(internal: Server, where: str) -> str:
    if where == "internal":
        return internal.url
    if where == "localhost":
        return internal.url.replace("127.0.0.1", "localhost")
    return where


async def _redirecting_supplier(api: Api, serve: Any, case: str, adapter: str = "rest_json") -> tuple[Server, Any]:
    internal = serve()
    status, where = REDIRECTS[case]
    supplier_server = serve(redirect=(status, _target(internal, where)))
    # A name without the word "redirect": the refusal's words are what the test reads.
    body = {"name": f"Parts Direct {adapter}", "adapter": adapter, "base_url": supplier_server.url, "api_key": "k"}
    created = await api.client.post(SUPPLIERS, json=body, headers=await api.login(MANAGER))
    assert created.status_code == 201, created.text
    return internal, (supplier_server, created.json())


@pytest.mark.parametrize("case", REDIRECTS)
async def test_quotes_and_orders_never_follow_a_suppliers_redirect(api: Api, serve: Any, case: str) -> None:
    await add_part(api)
    internal, (supplier_server, supplier) = await _redirecting_supplier(api, serve, case)
    view = await job_with_lines(api, [(SKU, 1)])
    line_id = view["lines"][0]["id"]

    asked = await quotes(api, view["ref"], line_id)
    ordered = await order(api, view["ref"], line_id, supplier["id"])

    assert asked.status_code == 200, asked.text
    (failure,) = asked.json()["failures"]
    assert "redirect" in failure["reason"], failure
    assert asked.json()["quotes"] == []
    problem = assert_problem(ordered, ordered.status_code)
    assert 400 <= ordered.status_code < 600 and ordered.status_code != 500, ordered.text
    assert "redirect" in problem["detail"].lower(), problem
    assert line_of(await job_parts(api, view["ref"]), line_id)["status"] == "needed"
    assert supplier_server.hits, "the supplier was asked"
    assert internal.hits == []  # never followed to the shop's own network
    assert "instance credentials" not in asked.text + ordered.text


async def test_a_stock_feed_that_redirects_is_not_followed(api: Api, serve: Any) -> None:
    await add_part(api)
    internal, (supplier_server, _) = await _redirecting_supplier(api, serve, "302 to a service on loopback", "csv_feed")
    view = await job_with_lines(api, [(SKU, 1)])

    asked = await quotes(api, view["ref"], view["lines"][0]["id"])

    assert asked.status_code == 200, asked.text
    assert ["redirect" in failure["reason"] for failure in asked.json()["failures"]] == [True], asked.text
    assert supplier_server.hits and internal.hits == []


async def test_the_workers_poll_never_follows_a_suppliers_redirect(
    api: Api, serve: Any, services: Services, clock: FakeClock
) -> None:
    await add_part(api)
    internal, (supplier_server, supplier) = await _redirecting_supplier(api, serve, "307 to a service on loopback")
    await job_with_lines(api, [(SKU, 1)])  # an open line: the poll asks for its SKU

    report = await polling.poll_supplier(services, supplier["id"], now=clock.now)

    assert supplier_server.hits, report
    assert internal.hits == []
    assert "redirect" in repr(report), report
