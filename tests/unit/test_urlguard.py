"""Supplier URLs that could reach Atelier itself or its network are refused, at config time and before
every request (DNS answers that change after the client was built included)."""

from __future__ import annotations

import asyncio
import socket
import ssl
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from integrations.http import pin
from integrations.suppliers.base import SupplierUnavailable
from integrations.urlguard import (
    UnresolvableHost,
    UnsafeURL,
    acheck_supplier_url,
    check_supplier_url,
    parse_supplier_url,
)
from tests.unit.supplier_fakes import PUBLIC_IP, Answer, FakeDns, ScriptedSupplier, make_http

# --- form -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "normal"),
    [
        ("https://Supplier.Example.com/t/acme", "https://supplier.example.com/t/acme"),
        ("HTTP://93.184.216.34:80/api", "http://93.184.216.34/api"),
        ("https://93.184.216.34:8443", "https://93.184.216.34:8443"),
        ("https://[2606:2800:220:1:248:1893:25c8:1946]/x", "https://[2606:2800:220:1:248:1893:25c8:1946]/x"),
        ("https://supplier.example.com./feed#frag", "https://supplier.example.com/feed"),
        ("  https://supplier.example.com  ", "https://supplier.example.com"),
    ],
)
def test_urls_are_normalised(url: str, normal: str) -> None:
    assert check_supplier_url(url, allow_private=False, resolve=False) == normal


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("ftp://supplier.example.com/feed.csv", "scheme"),
        ("file:///etc/passwd", "scheme"),
        ("gopher://supplier.example.com", "scheme"),
        ("supplier.example.com/api", "scheme"),
        ("javascript:alert(1)", "scheme"),
        ("https://", "no host"),
        ("https:///path", "no host"),
        ("https://user:pass@supplier.example.com", "credentials"),
        ("https://user@supplier.example.com", "credentials"),
        ("https://supplier.example.com@127.0.0.1/", "credentials"),
        ("https://supplier.example.com:99999/", "cannot be parsed"),
        ("https://supplier.example.com/a b", "whitespace"),
        ("https://supplier.example.com/\r\nHost: evil", "whitespace"),
        ("", "empty"),
        ("https://exa mple.com", "whitespace"),
        ("https://ex$ample.com", "not a valid host name"),
    ],
)
def test_malformed_urls_are_refused_even_when_private_is_allowed(url: str, reason: str) -> None:
    with pytest.raises(UnsafeURL, match=reason):
        check_supplier_url(url, allow_private=True)


def test_unsafe_url_is_a_value_error_with_a_reason() -> None:
    with pytest.raises(ValueError, match="credentials") as info:
        check_supplier_url("https://a:b@example.com", allow_private=False)
    assert isinstance(info.value, UnsafeURL)
    assert "credentials" in info.value.reason


# --- addresses --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "kind"),
    [
        ("127.0.0.1", "loopback"),
        ("127.8.9.10", "loopback"),
        ("0.0.0.0", "unspecified"),  # noqa: S104 - a value under test, not a bind
        ("10.1.2.3", "private"),
        ("172.16.0.1", "private"),
        ("192.168.1.1", "private"),
        ("169.254.169.254", "link-local"),  # cloud metadata
        ("100.64.0.1", "not a public"),  # carrier-grade NAT
        ("224.0.0.1", "multicast"),
        ("240.0.0.1", "reserved"),
        ("255.255.255.255", "reserved"),
        ("192.0.2.10", "private"),  # documentation
        ("[::1]", "loopback"),
        ("[::]", "unspecified"),
        ("[fe80::1]", "link-local"),
        ("[fc00::1]", "private"),
        ("[fd12:3456::1]", "private"),
        ("[ff02::1]", "multicast"),
        ("[::ffff:127.0.0.1]", "wraps 127.0.0.1"),  # IPv4-mapped
        ("[::ffff:169.254.169.254]", "wraps 169.254.169.254"),
        ("[2002:7f00:1::]", "wraps 127.0.0.1"),  # 6to4
        ("[2002:c0a8:101::1]", "wraps 192.168.1.1"),
        ("[64:ff9b::a00:1]", "wraps 10.0.0.1"),  # NAT64
        ("[2001:db8::1]", "private"),  # documentation
    ],
)
def test_non_public_addresses_are_refused(host: str, kind: str) -> None:
    with pytest.raises(UnsafeURL, match=kind):
        check_supplier_url(f"http://{host}:9100/api", allow_private=False)
    assert check_supplier_url(f"http://{host}:9100/api", allow_private=True).startswith("http://")


@pytest.mark.parametrize("host", ["127.1", "0x7f.0.0.1", "2130706433", "017700000001", "0177.0.0.1"])
def test_non_canonical_ipv4_spellings_are_refused(host: str) -> None:
    with pytest.raises(UnsafeURL, match="non-canonical"):
        check_supplier_url(f"http://{host}/", allow_private=False)


@pytest.mark.parametrize("host", ["localhost", "api.localhost", "printer.local", "metadata.google.internal"])
def test_local_names_are_refused_without_dns(host: str) -> None:
    with pytest.raises(UnsafeURL, match="local name"):
        check_supplier_url(f"http://{host}/", allow_private=False, resolve=False)


@pytest.mark.parametrize("host", ["93.184.216.34", "8.8.8.8", "[2606:4700:4700::1111]"])
def test_public_addresses_pass(host: str) -> None:
    assert check_supplier_url(f"https://{host}/api", allow_private=False) == f"https://{host}/api"


def _fake_getaddrinfo(answers: dict[str, list[str]]) -> Any:
    def getaddrinfo(host: str, port: int, *args: Any, **kwargs: Any) -> list[Any]:
        if host not in answers:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (ip, port)) for ip in answers[host]]

    return getaddrinfo


def test_a_name_is_resolved_and_every_address_must_be_public(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        socket,
        "getaddrinfo",
        _fake_getaddrinfo(
            {"good.example": ["93.184.216.34"], "mixed.example": ["93.184.216.34", "10.0.0.7"]},
        ),
    )
    assert check_supplier_url("https://good.example/x", allow_private=False) == "https://good.example/x"
    with pytest.raises(UnsafeURL, match=r"10\.0\.0\.7 is a private address"):
        check_supplier_url("https://mixed.example/x", allow_private=False)
    with pytest.raises(UnresolvableHost):
        check_supplier_url("https://nowhere.example/x", allow_private=False)
    # allowed private: no DNS at all
    assert check_supplier_url("https://nowhere.example/x", allow_private=True) == "https://nowhere.example/x"


def test_the_real_resolver_refuses_localhost_by_its_address() -> None:
    with pytest.raises(UnsafeURL):
        check_supplier_url("http://localhost:9100/", allow_private=False)
    assert check_supplier_url("http://localhost:9100/", allow_private=True) == "http://localhost:9100/"


async def test_async_variant_resolves_with_the_given_resolver() -> None:
    dns = FakeDns("10.9.8.7")
    with pytest.raises(UnsafeURL, match="private"):
        await acheck_supplier_url("https://rebound.example/", allow_private=False, resolver=dns)
    assert dns.lookups == ["rebound.example"]
    dns.addresses = [PUBLIC_IP]
    assert await acheck_supplier_url("https://rebound.example/", allow_private=False, resolver=dns) == (
        "https://rebound.example/"
    )


async def test_async_variant_uses_the_event_loop_resolver_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[str] = []

    async def getaddrinfo(host: str, port: int, **kwargs: Any) -> list[Any]:
        asked.append(host)
        return [(socket.AF_INET6, socket.SOCK_STREAM, 6, "", ("::1", port, 0, 0))]

    monkeypatch.setattr(asyncio.get_running_loop(), "getaddrinfo", getaddrinfo)
    with pytest.raises(UnsafeURL, match="loopback"):
        await acheck_supplier_url("http://sneaky.example/", allow_private=False)
    assert asked == ["sneaky.example"]


def test_target_keeps_host_and_port_for_resolution() -> None:
    target = parse_supplier_url("https://[::1]:8443/x")
    assert (target.host, target.port, str(target.ip)) == ("::1", 8443, "::1")
    assert parse_supplier_url("http://example.com/").port == 80


# --- the client checks before every request ---------------------------------------------------------


async def test_the_client_connects_to_the_address_it_checked() -> None:
    supplier = ScriptedSupplier(Answer(200))
    dns = FakeDns(PUBLIC_IP)
    http = make_http(supplier, allow_private=False, dns=dns, base_url="https://supplier.example/t/acme")
    await http.request("GET", "/api/v1/stock", operation="stock", idempotent=True)
    sent = supplier.requests[0]
    assert sent.url.host == PUBLIC_IP
    assert sent.url.path == "/t/acme/api/v1/stock"
    assert sent.headers["host"] == "supplier.example"
    assert sent.extensions["sni_hostname"] == "supplier.example"  # TLS still verifies the name


async def test_dns_rebinding_after_the_client_was_built_is_refused() -> None:
    supplier = ScriptedSupplier(Answer(200))
    dns = FakeDns(PUBLIC_IP)
    http = make_http(supplier, allow_private=False, dns=dns, base_url="https://supplier.example")
    await http.request("GET", "/x", operation="stock", idempotent=True)
    dns.addresses = ["127.0.0.1"]
    with pytest.raises(SupplierUnavailable, match=r"refused to call.*loopback"):
        await http.request("GET", "/x", operation="stock", idempotent=True)
    assert len(supplier.requests) == 1  # the second request never left
    assert dns.lookups == ["supplier.example", "supplier.example"]


async def test_a_name_that_stops_resolving_is_a_retryable_unavailability() -> None:
    supplier = ScriptedSupplier(Answer(200))
    dns = FakeDns()
    dns.addresses = []
    http = make_http(supplier, allow_private=False, dns=dns, base_url="https://supplier.example")
    with pytest.raises(SupplierUnavailable, match="does not resolve"):
        await http.request("GET", "/x", operation="stock", idempotent=True)
    assert len(dns.lookups) == 3  # retried like a connection error
    assert supplier.requests == []


async def test_with_private_allowed_the_client_neither_resolves_nor_pins() -> None:
    supplier = ScriptedSupplier(Answer(200))
    dns = FakeDns("127.0.0.1")
    http = make_http(supplier, allow_private=True, dns=dns, base_url="http://127.0.0.1:9100/t/acme")
    await http.request("GET", "/x", operation="stock", idempotent=True)
    assert dns.lookups == []
    assert str(supplier.requests[0].url) == "http://127.0.0.1:9100/t/acme/x"


# --- pinning keeps TLS verification on the name -----------------------------------------------------


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[tuple[int, ssl.SSLContext]]:
    """An HTTPS server on 127.0.0.1 whose certificate names only `supplier.test`, and a client context
    trusting that certificate."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "supplier.test")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("supplier.test")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    (tmp_path / "cert.pem").write_bytes(cert_pem)
    (tmp_path / "key.pem").write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = self.headers.get("host", "").encode()
            self.send_response(200)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
    server.socket = server_context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    client_context = ssl.create_default_context(cadata=cert_pem.decode())
    try:
        yield server.server_address[1], client_context
    finally:
        server.shutdown()
        server.server_close()


async def test_a_pinned_request_verifies_tls_against_the_host_name(tls_server: tuple[int, ssl.SSLContext]) -> None:
    port, context = tls_server
    async with httpx.AsyncClient(verify=context, trust_env=False) as client:
        request = client.build_request("GET", f"https://supplier.test:{port}/x")
        pin(request, "127.0.0.1", "supplier.test")
        response = await client.send(request)
        assert response.status_code == 200
        assert response.content == f"supplier.test:{port}".encode()  # the Host header kept the name

        # The same address under a name the certificate does not carry: verification still refuses it.
        other = client.build_request("GET", f"https://other.test:{port}/x")
        pin(other, "127.0.0.1", "other.test")
        with pytest.raises(httpx.ConnectError, match=r"CERTIFICATE_VERIFY_FAILED|certificate"):
            await client.send(other)
