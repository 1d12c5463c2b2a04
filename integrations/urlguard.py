"""Refuse supplier URLs that would make Atelier call itself or its private network (SSRF).

A supplier's base URL is typed in by a manager, so it is untrusted: it must be http(s), carry no
credentials, and, unless private addresses are explicitly allowed (the sandbox, tests), name a host
whose every address is public. Names are resolved and each address checked, and the HTTP helper
resolves again before every request and connects to the address it checked (no DNS rebinding between
the check and the connection).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit, urlunsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# (host, port) -> addresses, as `loop.getaddrinfo` would give them; injectable for tests.
AsyncResolver = Callable[[str, int], Awaitable[Sequence[str]]]

_SCHEMES = {"http": 80, "https": 443}
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")


class UnsafeURL(ValueError):
    """The URL may not be called; `reason` says why in words a manager understands."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class UnresolvableHost(UnsafeURL):
    """The host name does not resolve (now): not unsafe as such, and possibly transient."""


@dataclass(frozen=True, slots=True)
class Target:
    """A checked URL: its normal form, host and port (for resolving and pinning the connection)."""

    url: str
    host: str
    port: int
    ip: IPAddress | None  # the host when it is an address literal


def parse_supplier_url(url: str) -> Target:
    """The checks that need no DNS: scheme, host, port, no credentials; returns the normal form."""
    if not isinstance(url, str) or not url.strip():
        raise UnsafeURL("the URL is empty")
    raw = url.strip()
    if any(ch.isspace() or ord(ch) < 0x20 or ord(ch) == 0x7F for ch in raw):
        raise UnsafeURL("the URL contains whitespace or control characters")
    try:
        parts = urlsplit(raw)
        port = parts.port
    except ValueError as exc:
        raise UnsafeURL(f"the URL cannot be parsed ({exc})") from None
    scheme = parts.scheme.lower()
    if scheme not in _SCHEMES:
        raise UnsafeURL(f"scheme {parts.scheme or '(none)'!r} is not allowed: use http or https")
    if "@" in parts.netloc:
        raise UnsafeURL("credentials in the URL are not allowed: set the API key instead")
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise UnsafeURL("the URL has no host")
    ip = _literal_ip(host)
    if ip is None:
        host = _normal_hostname(host)
    netloc_host = f"[{ip.compressed}]" if isinstance(ip, ipaddress.IPv6Address) else (ip.compressed if ip else host)
    if port is not None and port != _SCHEMES[scheme]:
        netloc_host = f"{netloc_host}:{port}"
    normal = urlunsplit(SplitResult(scheme, netloc_host, parts.path, parts.query, ""))
    return Target(url=normal, host=ip.compressed if ip else host, port=port or _SCHEMES[scheme], ip=ip)


def unsafe_address_reason(ip: IPAddress) -> str | None:
    """Why this address is not a public one (None when it is), looking inside IPv6 wrappers of IPv4."""
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(ip)
        if embedded is not None:
            inner = unsafe_address_reason(embedded)
            if inner is not None:
                return f"{ip.compressed} wraps {embedded}: {inner}"
    for flag, label in (
        (ip.is_unspecified, "unspecified"),
        (ip.is_loopback, "loopback"),
        (ip.is_link_local, "link-local"),
        (ip.is_multicast, "multicast"),
        (ip.is_reserved, "reserved"),
        (ip.is_private, "private"),
    ):
        if flag:
            return f"{ip.compressed} is a {label} address"
    if not ip.is_global:
        return f"{ip.compressed} is not a public address"
    return None


def check_supplier_url(url: str, *, allow_private: bool, resolve: bool = True) -> str:
    """The normalised URL, or `UnsafeURL` with the reason.

    Unless `allow_private`, the host must be a public address or a name that resolves (blocking
    `socket.getaddrinfo`; use `acheck_supplier_url` in async code) only to public addresses.
    `resolve=False` skips DNS (config-time checks; the request-time check resolves anyway).
    """
    target = parse_supplier_url(url)
    if allow_private:
        return target.url
    if target.ip is not None:
        _require_public(target.ip, target.host)
    else:
        _refuse_local_name(target.host)
    if target.ip is None and resolve:
        try:
            infos = socket.getaddrinfo(target.host, target.port, type=socket.SOCK_STREAM)
        except (socket.gaierror, UnicodeError) as exc:
            raise UnresolvableHost(f"host {target.host!r} does not resolve ({exc})") from None
        check_addresses(target.host, [str(info[4][0]) for info in infos])
    return target.url


async def acheck_supplier_url(url: str, *, allow_private: bool, resolver: AsyncResolver | None = None) -> str:
    """`check_supplier_url` for async code: resolves with the event loop's `getaddrinfo`."""
    target = parse_supplier_url(url)
    if not allow_private:
        await resolve_public(target, resolver=resolver)
    return target.url


async def resolve_public(target: Target, *, resolver: AsyncResolver | None = None) -> list[IPAddress]:
    """Every address of the target's host, all public, or `UnsafeURL` (`UnresolvableHost` if none)."""
    if target.ip is not None:
        _require_public(target.ip, target.host)
        return [target.ip]
    _refuse_local_name(target.host)
    try:
        addresses = await (resolver or _loop_resolver)(target.host, target.port)
    except (OSError, UnicodeError) as exc:
        raise UnresolvableHost(f"host {target.host!r} does not resolve ({exc})") from None
    return check_addresses(target.host, addresses)


def check_addresses(host: str, addresses: Sequence[str]) -> list[IPAddress]:
    """All of them must be public: the connection may use any of them."""
    if not addresses:
        raise UnresolvableHost(f"host {host!r} resolves to no address")
    checked: list[IPAddress] = []
    for text in addresses:
        ip = ipaddress.ip_address(text.split("%", 1)[0])  # drop an IPv6 zone id
        _require_public(ip, host)
        if ip not in checked:
            checked.append(ip)
    return checked


async def _loop_resolver(host: str, port: int) -> list[str]:
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


def _require_public(ip: IPAddress, host: str) -> None:
    reason = unsafe_address_reason(ip)
    if reason is not None:
        where = "" if host == ip.compressed else f"host {host!r} resolves to an address that is not public: "
        raise UnsafeURL(f"{where}{reason}")


def _refuse_local_name(host: str) -> None:
    if host == "localhost" or host.endswith((".localhost", ".local", ".internal")):
        raise UnsafeURL(f"host {host!r} is a local name")


def _literal_ip(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    if "%" in host:
        raise UnsafeURL("IPv6 zone ids are not allowed in a supplier URL")
    # inet_aton reads "127.1", "0x7f.1" or "2130706433" as addresses, and so would the connection:
    # such spellings are never a supplier's address, only a way around a naive check.
    try:
        socket.inet_aton(host)
    except OSError:
        return None
    raise UnsafeURL(f"host {host!r} is a non-canonical spelling of an IPv4 address")


def _normal_hostname(host: str) -> str:
    try:
        ascii_host = host.encode("idna").decode("ascii").lower()
    except UnicodeError:
        raise UnsafeURL(f"host {host!r} is not a valid host name") from None
    labels = ascii_host.split(".")
    if len(ascii_host) > 253 or any(not label or len(label) > 63 for label in labels):
        raise UnsafeURL(f"host {host!r} is not a valid host name")
    if any(not (ch.isalnum() or ch in "-_") for label in labels for ch in label):
        raise UnsafeURL(f"host {host!r} is not a valid host name")
    return ascii_host


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]
    if ip in _NAT64 or ip in _NAT64_LOCAL:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None
