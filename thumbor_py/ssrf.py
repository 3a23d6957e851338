"""Pure SSRF address checks: which IP addresses an HTTP source may never connect to.

The HTTP loader calls :func:`blocked_reason` on every address it resolves and again on the
address each socket connects to, so DNS rebinding, IP literals and redirects all meet the same
check. IPv6 forms that carry an IPv4 address (IPv4-mapped, IPv4-compatible, SIIT-translated,
6to4, NAT64, Teredo) are judged by the IPv4 address they carry.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence

from thumbor_py.errors import SourceForbiddenError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class AddressBlockedError(SourceForbiddenError, OSError):
    """A connection to a refused address (400). It is also an ``OSError`` so that it passes
    through aiohttp's resolver and connector, which only carry ``OSError``."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"source address refused: {reason}")
        self.why = reason  # the bare reason (``reason`` is the whole one-line answer)


def _table(rows: Iterable[tuple[str, str]]) -> tuple[tuple[IPNetwork, str], ...]:
    return tuple((ipaddress.ip_network(cidr), reason) for cidr, reason in rows)


# Most specific first: the first matching row names the refusal.
BLOCKED_NETWORKS: tuple[tuple[IPNetwork, str], ...] = _table(
    [
        ("0.0.0.0/8", "unspecified"),
        ("10.0.0.0/8", "private"),
        ("100.64.0.0/10", "carrier-grade NAT"),
        ("127.0.0.0/8", "loopback"),
        ("169.254.0.0/16", "link-local"),
        ("172.16.0.0/12", "private"),
        ("192.0.0.0/24", "reserved"),
        ("192.0.2.0/24", "reserved"),
        ("192.88.99.0/24", "reserved"),
        ("192.168.0.0/16", "private"),
        ("198.18.0.0/15", "reserved"),
        ("198.51.100.0/24", "reserved"),
        ("203.0.113.0/24", "reserved"),
        ("224.0.0.0/4", "multicast"),
        ("240.0.0.0/4", "reserved"),
        ("::/128", "unspecified"),
        ("::1/128", "loopback"),
        ("64:ff9b:1::/48", "reserved"),
        ("100::/64", "reserved"),
        ("2001:db8::/32", "reserved"),
        ("fc00::/7", "private"),
        ("fe80::/10", "link-local"),
        ("fec0::/10", "private"),
        ("ff00::/8", "multicast"),
    ]
)

_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")
_SIIT = ipaddress.ip_network("::ffff:0:0:0/96")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


def embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries (mapped, compatible, SIIT, 6to4, NAT64, Teredo)."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        # The client address is the one traffic ends up at.
        return address.teredo[1]
    low32 = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if address in _NAT64 or address in _SIIT:
        return low32
    if address in _IPV4_COMPATIBLE and int(address) > 1:
        return low32
    return None


def parse_address(text: str) -> IPAddress | None:
    """``text`` as an IP address (IPv6 zone and brackets allowed), or None for a host name."""
    try:
        return ipaddress.ip_address(text.strip("[]"))
    except ValueError:
        return None


def blocked_reason(address: IPAddress, allowed: Sequence[IPNetwork] = ()) -> str | None:
    """Why ``address`` must not be connected to, or None when it is a public address.

    ``allowed`` lists networks an operator opened on purpose (intranet origins); an address in
    one of them, or carrying an IPv4 address in one of them, is never refused.
    """
    if isinstance(address, ipaddress.IPv6Address) and address.scope_id:
        address = ipaddress.IPv6Address(address.compressed.partition("%")[0])
    inner = embedded_ipv4(address) if isinstance(address, ipaddress.IPv6Address) else None
    if any(address in net or (inner is not None and inner in net) for net in allowed):
        return None
    if inner is not None:
        reason = blocked_reason(inner)
        return None if reason is None else f"{reason} (IPv4 inside IPv6)"
    for network, reason in BLOCKED_NETWORKS:
        if address in network:
            return reason
    if address == ipaddress.IPv4Address("255.255.255.255"):
        return "broadcast"
    # Anything the IANA registries do not call globally reachable is refused too.
    return None if address.is_global else "reserved"


def parse_networks(cidrs: Iterable[str]) -> tuple[IPNetwork, ...]:
    """Parse CIDR strings; ``ValueError`` names the bad entry."""
    networks: list[IPNetwork] = []
    for cidr in cidrs:
        try:
            networks.append(ipaddress.ip_network(cidr, strict=False))
        except ValueError as exc:
            raise ValueError(f"not a network: {cidr!r}") from exc
    return tuple(networks)
