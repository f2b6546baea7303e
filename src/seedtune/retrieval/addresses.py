"""Which network addresses the crawler may connect to: the public internet, and what
``crawl.allow_networks`` lets through.

A search result, a redirect or a frame can point anywhere, including this machine and its
network: a cloud metadata service (``169.254.169.254``), an admin page on loopback, a
router on ``192.168.0.1``. The crawler refuses every address that is not globally routable
(:func:`refusal`): private, loopback, link-local, multicast, reserved, unspecified, shared
(``100.64.0.0/10``) and IPv6 site-local, unique-local and documentation addresses, and the
IPv6 forms that carry one of those IPv4 addresses (IPv4-mapped ``::ffff:127.0.0.1``,
IPv4-compatible, 6to4, NAT64).

The check is made on the address connected to, after DNS resolution: :class:`GuardedResolver`
wraps aiohttp's resolver and hands the connection only the addresses it checked (no second
lookup an attacker's DNS could answer differently), and a literal IP in a URL, which aiohttp
does not resolve, is checked by :meth:`AddressPolicy.literal_refusal`.

``crawl.allow_networks`` (:meth:`AddressPolicy.parse`) lists what is fetched anyway:
networks (``10.0.0.0/8``, ``::1/128``; a bare IP is its own network) on any port, or exact
``host:port`` / ``[v6]:port`` addresses, where the host is an IP (the address connected to)
or a name (as the URL spells it, whatever it resolves to). The simulator and the tests
allow only their own loopback ports.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Iterable
from typing import Any

from seedtune.core.errors import ConfigError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

SETTING = "crawl.allow_networks"
_SHARED = ipaddress.ip_network("100.64.0.0/10")  # carrier-grade NAT (RFC 6598)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")  # RFC 6052: the last 32 bits are IPv4
_NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")  # RFC 8215: local-use translators
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")  # deprecated ::a.b.c.d (RFC 4291)
_HOST_PORT = re.compile(
    r"^(?:\[(?P<v6>[0-9A-Fa-f:.%]+)\]|(?P<host>[A-Za-z0-9._-]+)):"
    r"(?P<port>\d{1,5})$"
)
_NAME = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?:\.(?!-)[A-Za-z0-9-]{1,63})*\.?$")


class BlockedAddress(OSError):
    """A connection the address policy refused (no packet was sent). An ``OSError`` so that
    aiohttp wraps it as it wraps a failed DNS lookup, keeping it as ``os_error``."""


def refusal(address: str | IPAddress) -> str | None:
    """Why the crawler does not connect to ``address`` (e.g. ``"loopback"``), or None for a
    globally routable unicast address."""
    ip = ipaddress.ip_address(address) if isinstance(address, str) else address
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(ip)
        if embedded is not None:
            why = refusal(embedded)
            return f"{why} (as IPv6 {ip})" if why else None
        if ip in _NAT64_LOCAL:
            return "NAT64 local-use"
        if ip in _IPV4_COMPATIBLE and not (ip.is_unspecified or ip.is_loopback):
            return "IPv4-compatible (deprecated)"
        if ip.is_site_local:  # deprecated fec0::/10, which Python counts as global
            return "site-local"
    checks = (
        ("unspecified", ip.is_unspecified),
        ("loopback", ip.is_loopback),
        ("link-local", ip.is_link_local),
        ("multicast", ip.is_multicast),
        ("shared (100.64.0.0/10)", ip in _SHARED),
        ("private", ip.is_private),
        ("reserved", ip.is_reserved),
        ("not globally routable", not ip.is_global),
    )
    return next((why for why, hit in checks if hit), None)


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one stands for (IPv4-mapped, 6to4, NAT64), else None: the
    packets end up at that IPv4 address, so it is what is checked."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def _ip(text: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _normal(ip: IPAddress) -> IPAddress:
    """IPv4-mapped IPv6 as its IPv4 address, without a zone: how allow entries match."""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return ip.ipv4_mapped
        if ip.scope_id:
            return ipaddress.IPv6Address(str(ip).split("%", 1)[0])
    return ip


class AddressPolicy:
    """Public addresses, plus the networks and exact addresses ``crawl.allow_networks``
    allows; see the module docstring."""

    def __init__(
        self,
        networks: Iterable[ipaddress.IPv4Network | ipaddress.IPv6Network] = (),
        exact: Iterable[tuple[str, int]] = (),
    ) -> None:
        self.networks = list(networks)
        self.exact_ips: set[tuple[IPAddress, int]] = set()
        self.exact_names: set[tuple[str, int]] = set()
        for host, port in exact:
            self.allow_exact(host, port)

    @classmethod
    def parse(cls, entries: Iterable[Any]) -> AddressPolicy:
        """The policy ``crawl.allow_networks`` describes; a bad entry is a one-line
        :class:`ConfigError` naming the setting."""
        if isinstance(entries, str | bytes):
            raise ConfigError(
                f'{SETTING}: expected a list, e.g. ["127.0.0.1:8080"], got {entries!r}'
            )
        policy = cls()
        for entry in entries:
            text = entry.strip() if isinstance(entry, str) else None
            match = _HOST_PORT.match(text) if text else None
            if text and match:
                host = match.group("v6") or match.group("host")
                port = int(match.group("port"))
                ip = _ip(host)
                if match.group("v6"):
                    ok = isinstance(ip, ipaddress.IPv6Address)
                else:  # an IPv4 address, or a name that is not all digits (aiohttp's IPs)
                    ok = isinstance(ip, ipaddress.IPv4Address) or bool(
                        ip is None and _NAME.match(host) and not host.replace(".", "").isdigit()
                    )
                if ok and 0 < port < 65536:
                    policy.allow_exact(host, port)
                    continue
            elif text:
                try:
                    policy.networks.append(ipaddress.ip_network(text, strict=False))
                    continue
                except ValueError:
                    pass
            raise ConfigError(
                f"{SETTING}: {entry!r} is neither a network (127.0.0.0/8, "
                "::1/128) nor a host:port (127.0.0.1:8080, [::1]:8080)"
            )
        return policy

    def allow_exact(self, host: str, port: int) -> None:
        """Let ``host:port`` through: an IP (the address connected to) or a name (the host
        a URL names)."""
        ip = _ip(host.strip("[]"))
        if ip is not None:
            self.exact_ips.add((_normal(ip), port))
        else:
            self.exact_names.add((host.rstrip(".").lower(), port))

    def name_allowed(self, host: str, port: int) -> bool:
        """Whether ``host:port`` is allowed by name, whatever it resolves to."""
        return (host.rstrip(".").lower(), port) in self.exact_names

    def refusal(self, address: str | IPAddress, port: int, host: str | None = None) -> str | None:
        """Why a connection to ``address:port`` (reached by the name ``host``) is refused,
        or None when it is allowed."""
        ip = ipaddress.ip_address(address) if isinstance(address, str) else address
        why = refusal(ip)
        if why is None or (host is not None and self.name_allowed(host, port)):
            return None
        plain = _normal(ip)
        if (plain, port) in self.exact_ips:
            return None
        if any(plain.version == net.version and plain in net for net in self.networks):
            return None
        return f"{why} address {ip}"

    def literal_refusal(self, host: str, port: int) -> str | None:
        """For a URL host that aiohttp connects to without resolving it (an IP literal,
        ``aiohttp.helpers.is_ip_address``): why it is refused, or None. A numeric host
        :mod:`ipaddress` cannot read (``127.1``, ``2130706433``) is read as the C library
        would, and refused when even that fails."""
        ip = _ip(host)
        if ip is None and ":" not in host:
            try:
                ip = ipaddress.IPv4Address(socket.inet_aton(host))
            except OSError:
                return f"unreadable numeric address {host}"
        if ip is None:
            return f"unreadable numeric address {host}"
        return self.refusal(ip, port)


class GuardedResolver:
    """aiohttp's resolver with the :class:`AddressPolicy` applied to what it answers: the
    refused addresses are dropped, and a name with only refused ones raises
    :class:`BlockedAddress`. The connector connects only to what this returns, so the
    address checked is the address connected to."""

    def __init__(self, policy: AddressPolicy, inner: Any = None) -> None:
        from aiohttp.resolver import DefaultResolver

        self.policy = policy
        self.inner = inner if inner is not None else DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: int = socket.AF_INET
    ) -> list[dict[str, Any]]:
        """The allowed addresses of ``host`` (aiohttp's ``ResolveResult`` dicts)."""
        results = await self.inner.resolve(host, port, family=family)
        kept, why = [], ""
        for result in results:
            refused = self.policy.refusal(result["host"], port, host)
            if refused is None:
                kept.append(result)
            else:
                why = why or refused
        if not kept:
            raise BlockedAddress(f"{host}:{port} resolves only to refused addresses ({why})")
        return kept

    async def close(self) -> None:
        """Close the wrapped resolver."""
        await self.inner.close()
