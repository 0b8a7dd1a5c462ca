"""Where a webhook may be sent: only to public addresses, checked when the URL is given and again
at every delivery (issue 9, hostile input).

A unit's webhook URL is typed by its staff. Without a check it makes this service send requests
into the network it runs in: the database, the broker, a cloud metadata endpoint
(169.254.169.254). So:

- the URL must be `http(s)://host[:port]/…` without user name or password;
- every address its host resolves to must be public (`is_global`: not loopback, private,
  link-local, shared, documentation, reserved, unspecified, nor multicast; an IPv4 address
  inside IPv6 — mapped, NAT64, 6to4, Teredo — is judged as that IPv4 address), or inside a network
  of the allow-list (`WEBHOOK_ALLOWED_NETWORKS`, for tests and development);
- at delivery the host is resolved again, checked again, and the request goes to the checked
  address itself (the URL's host kept in the `Host` header and for TLS), so a DNS answer that
  changes between the check and the connection (DNS rebinding) cannot redirect it.

The messages are Vietnamese, for the staff member who typed the URL; they never show the
addresses a name resolved to.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field

import httpx

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolver = Callable[[str, int], Awaitable[list[str]]]
"""(host, port) → the addresses it resolves to, as text."""

LOOPBACK: tuple[IPNetwork, ...] = (
    ipaddress.ip_network("127.0.0.0/8"),
    ipaddress.ip_network("::1/128"),
)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


class RefusedAddress(ValueError):
    """The webhook URL may not be used; `message` says why, for the person who gave it."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


async def system_resolver(host: str, port: int) -> list[str]:
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def parse_networks(text: str) -> tuple[IPNetwork, ...]:
    """`"127.0.0.0/8, ::1, 10.1.2.0/24"` → networks (a bare address is its own network)."""
    return tuple(
        ipaddress.ip_network(item.strip(), strict=False) for item in text.split(",") if item.strip()
    )


def is_public(address: IPAddress) -> bool:
    if isinstance(address, ipaddress.IPv6Address):
        embedded = (
            address.ipv4_mapped
            or address.sixtofour
            or (address.teredo[1] if address.teredo else None)
            or (ipaddress.IPv4Address(int(address) & 0xFFFFFFFF) if address in _NAT64 else None)
        )
        if embedded is not None:
            return is_public(embedded)
    return address.is_global and not address.is_multicast


@dataclass(frozen=True)
class Pinned:
    """A request target bound to a checked address."""

    url: str
    """The URL with the checked address in place of the host name."""
    host: str
    """The original `host[:port]`, for the `Host` header."""
    sni_hostname: str | None
    """The host name for TLS (certificate checked against it), None for an address literal."""

    def extensions(self) -> dict[str, str]:
        return {"sni_hostname": self.sni_hostname} if self.sni_hostname else {}


@dataclass(frozen=True)
class AddressGuard:
    allowed: tuple[IPNetwork, ...] = ()
    resolver: Resolver = field(default=system_resolver, compare=False)

    def allows(self, address: IPAddress) -> bool:
        return is_public(address) or any(address in net for net in self.allowed)

    async def pin(self, url: str) -> Pinned:
        """Check `url` and bind it to one of its host's addresses; `RefusedAddress` otherwise."""
        try:
            parsed = httpx.URL(url)
        except (httpx.InvalidURL, ValueError):
            raise RefusedAddress("Địa chỉ webhook không hợp lệ.") from None
        if parsed.scheme not in ("http", "https"):
            raise RefusedAddress("Địa chỉ webhook phải bắt đầu bằng http:// hoặc https://.")
        if parsed.userinfo:
            raise RefusedAddress(
                "Địa chỉ webhook không được chứa tên đăng nhập hay mật khẩu; "
                "hãy dùng khóa bí mật (webhook_secret) để xác thực."
            )
        host = parsed.raw_host.decode("ascii")
        if not host:
            raise RefusedAddress("Địa chỉ webhook thiếu tên máy chủ.")
        port = parsed.port or (443 if parsed.scheme == "https" else 80)
        literal = _literal(host)
        addresses = [literal] if literal is not None else await self._resolve(host, port)
        if not addresses or not all(self.allows(a) for a in addresses):
            raise RefusedAddress(
                "Địa chỉ webhook trỏ vào mạng nội bộ, địa chỉ loopback, link-local hoặc địa chỉ "
                "dành riêng: không được phép. Hãy dùng một địa chỉ công khai trên Internet."
            )
        return Pinned(
            url=str(parsed.copy_with(host=str(addresses[0]))),
            host=parsed.netloc.decode("ascii"),
            sni_hostname=None if literal is not None else host,
        )

    async def _resolve(self, host: str, port: int) -> list[IPAddress]:
        try:
            found = await self.resolver(host, port)
        except (OSError, UnicodeError):
            raise RefusedAddress(f"Không tìm thấy máy chủ '{host}' của địa chỉ webhook.") from None
        return [_address(a) for a in found]


def _literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def _address(text: str) -> IPAddress:
    return ipaddress.ip_address(text.split("%", 1)[0])  # an IPv6 zone id is not part of it


def guard_for(allowed: Iterable[IPNetwork], resolver: Resolver | None = None) -> AddressGuard:
    return AddressGuard(tuple(allowed), resolver or system_resolver)
