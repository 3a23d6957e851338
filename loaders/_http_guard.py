"""Connect-time SSRF guard for aiohttp: a filtering resolver and a checking socket factory.

The resolver drops every resolved address :func:`thumbor_py.ssrf.blocked_reason` refuses, so
the connection pool and the DNS cache only ever hold allowed addresses. The socket factory
checks the address each socket is about to connect to, which also covers IP literals (aiohttp
never sends those through the resolver). Both raise :class:`AddressBlockedError`, an
``OSError`` so aiohttp's happy-eyeballs code passes it through unchanged.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Sequence

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.connector import AddrInfoType, SocketFactoryType

from thumbor_py.ssrf import AddressBlockedError, IPNetwork, blocked_reason, parse_address

log = logging.getLogger("thumbor_py.loaders.http")


def check_address(host: str, allowed: Sequence[IPNetwork]) -> None:
    """Raise :class:`AddressBlockedError` when ``host`` is an IP address the guard refuses."""
    address = parse_address(host)
    if address is None:
        raise AddressBlockedError("not an IP address")
    reason = blocked_reason(address, allowed)
    if reason is not None:
        raise AddressBlockedError(reason)


class GuardedResolver(AbstractResolver):
    """Wraps a resolver and keeps only the addresses the SSRF guard allows."""

    def __init__(self, inner: AbstractResolver, allowed: Sequence[IPNetwork] = ()) -> None:
        self._inner = inner
        self._allowed = tuple(allowed)

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        """Resolve ``host``; refuse it when none of its addresses is allowed."""
        results = await self._inner.resolve(host, port, family)
        kept: list[ResolveResult] = []
        reasons: list[str] = []
        for result in results:
            try:
                check_address(result["host"], self._allowed)
            except AddressBlockedError as exc:
                reasons.append(exc.why)
                log.info("SSRF guard: %s -> %s refused (%s)", host, result["host"], exc.why)
                continue
            kept.append(result)
        if not kept:
            # The reason names the range, never the address: internal DNS stays private.
            raise AddressBlockedError(reasons[0] if reasons else "host has no address")
        return kept

    async def close(self) -> None:
        """Close the wrapped resolver."""
        await self._inner.close()


def guarded_socket_factory(allowed: Sequence[IPNetwork]) -> SocketFactoryType:
    """A socket factory for ``TCPConnector`` that refuses blocked peer addresses."""
    networks = tuple(allowed)

    def factory(addr_info: AddrInfoType) -> socket.socket:
        family, type_, proto, _, sockaddr = addr_info
        check_address(str(sockaddr[0]), networks)
        return socket.socket(family=family, type=type_, proto=proto)

    return factory
