"""The SSRF address matrix (pure) and the guard at work in the HTTP loader.

The loader tests in the second half open exactly one address on purpose: a copy of the origin
on 127.0.0.2 (``allowed_networks: [127.0.0.2/32]``), so it can redirect to a *live* origin on
127.0.0.1 and prove that the refusal comes from the guard, not from a failed connection.
"""

from __future__ import annotations

import ipaddress
import socket

import aiohttp
import pytest

from loaders._http_guard import GuardedResolver, guarded_socket_factory
from loaders.http import _translate_errors
from tests.loaders.http_origin import ALT_HOST, IMAGE, LoaderFactory, StubResolver
from thumbor_py.errors import SourceForbiddenError
from thumbor_py.ssrf import AddressBlockedError, blocked_reason, parse_address, parse_networks

BLOCKED = [
    ("0.0.0.0", "unspecified"),
    ("0.1.2.3", "unspecified"),
    ("10.0.0.1", "private"),
    ("10.255.255.255", "private"),
    ("100.64.0.1", "carrier-grade NAT"),
    ("100.127.255.254", "carrier-grade NAT"),
    ("127.0.0.1", "loopback"),
    ("127.255.255.254", "loopback"),
    ("169.254.169.254", "link-local"),
    ("169.254.0.1", "link-local"),
    ("172.16.0.1", "private"),
    ("172.31.255.255", "private"),
    ("192.0.0.8", "reserved"),
    ("192.0.2.1", "reserved"),
    ("192.88.99.1", "reserved"),
    ("192.168.1.1", "private"),
    ("198.18.0.1", "reserved"),
    ("198.51.100.1", "reserved"),
    ("203.0.113.1", "reserved"),
    ("224.0.0.1", "multicast"),
    ("239.255.255.250", "multicast"),
    ("240.0.0.1", "reserved"),
    ("255.255.255.255", "reserved"),
    ("::", "unspecified"),
    ("::1", "loopback"),
    ("fe80::1", "link-local"),
    ("fe80::1%1", "link-local"),
    ("fc00::1", "private"),
    ("fd12:3456::1", "private"),
    ("fec0::1", "private"),
    ("ff02::1", "multicast"),
    ("2001:db8::1", "reserved"),
    ("100::1", "reserved"),
    ("64:ff9b:1::1", "reserved"),
    ("::ffff:127.0.0.1", "loopback (IPv4 inside IPv6)"),
    ("::ffff:169.254.169.254", "link-local (IPv4 inside IPv6)"),
    ("::ffff:10.0.0.1", "private (IPv4 inside IPv6)"),
    ("::127.0.0.1", "loopback (IPv4 inside IPv6)"),
    ("::ffff:0:127.0.0.1", "loopback (IPv4 inside IPv6)"),
    ("2002:7f00:1::", "loopback (IPv4 inside IPv6)"),
    ("2002:a9fe:a9fe::1", "link-local (IPv4 inside IPv6)"),
    ("64:ff9b::7f00:1", "loopback (IPv4 inside IPv6)"),
    ("64:ff9b::a9fe:a9fe", "link-local (IPv4 inside IPv6)"),
    ("2001:0:4136:e378:8000:63bf:80ff:fffe", "loopback (IPv4 inside IPv6)"),
]

PUBLIC = [
    "1.1.1.1",
    "8.8.8.8",
    "93.184.216.34",
    "100.63.255.255",
    "100.128.0.0",
    "172.15.255.255",
    "172.32.0.0",
    "192.169.0.1",
    "2606:4700:4700::1111",
    "2a00:1450:4001:80b::200e",
    "::ffff:8.8.8.8",
    "2002:808:808::1",
    "64:ff9b::808:808",
]


@pytest.mark.parametrize(("text", "reason"), [pytest.param(t, r, id=t) for t, r in BLOCKED])
def test_blocked_addresses(text: str, reason: str) -> None:
    address = parse_address(text)
    assert address is not None
    assert blocked_reason(address) == reason


@pytest.mark.parametrize("text", PUBLIC)
def test_public_addresses_are_allowed(text: str) -> None:
    address = parse_address(text)
    assert address is not None
    assert blocked_reason(address) is None


@pytest.mark.parametrize(
    ("text", "allowed", "reason"),
    [
        pytest.param("10.1.2.3", "10.1.0.0/16", None, id="opened"),
        pytest.param("::ffff:10.1.2.3", "10.1.0.0/16", None, id="opened-mapped"),
        pytest.param("10.2.0.1", "10.1.0.0/16", "private", id="neighbour-still-closed"),
        pytest.param("127.0.0.1", "127.0.0.2/32", "loopback", id="one-address-only"),
    ],
)
def test_allowed_networks(text: str, allowed: str, reason: str | None) -> None:
    address = ipaddress.ip_address(text)
    assert blocked_reason(address, parse_networks([allowed])) == reason


def test_host_names_are_not_addresses() -> None:
    assert parse_address("localhost") is None
    assert parse_address("[::1]") == ipaddress.ip_address("::1")


async def test_resolver_keeps_only_allowed_addresses() -> None:
    inner = StubResolver({"mixed.test": ["10.0.0.1", "93.184.216.34"], "evil.test": ["10.0.0.1"]})
    resolver = GuardedResolver(inner)
    kept = await resolver.resolve("mixed.test", 80)
    assert [result["host"] for result in kept] == ["93.184.216.34"]
    with pytest.raises(AddressBlockedError, match="private"):
        await resolver.resolve("evil.test", 80)


def test_socket_factory_refuses_before_creating_a_socket() -> None:
    factory = guarded_socket_factory(())
    for sockaddr in [("127.0.0.1", 80), ("169.254.169.254", 80), ("::ffff:127.0.0.1", 80, 0, 0)]:
        family = socket.AF_INET6 if ":" in str(sockaddr[0]) else socket.AF_INET
        with pytest.raises(AddressBlockedError):
            factory((family, socket.SOCK_STREAM, 6, "", sockaddr))


async def test_socket_factory_alone_stops_aiohttp_with_a_400(alt_origin: str) -> None:
    # A resolver that is *not* guarded hands out 127.0.0.2; only the socket factory checks.
    port = int(alt_origin.rsplit(":", 1)[1])
    connector = aiohttp.TCPConnector(
        resolver=StubResolver({"sneaky.test": [ALT_HOST]}),
        socket_factory=guarded_socket_factory(()),
    )
    async with aiohttp.ClientSession(connector=connector) as session:
        with pytest.raises(SourceForbiddenError, match="loopback"), _translate_errors():
            await session.get(f"http://sneaky.test:{port}/image.jpg")


# Every source below is refused with a 400 by the guard (allow_private_networks is false).
REFUSED_SOURCES = [
    "http://127.0.0.1:{port}/image.jpg",
    "http://localhost:{port}/image.jpg",
    "http://[::1]:{port}/image.jpg",
    "http://[::ffff:127.0.0.1]:{port}/image.jpg",
    "http://[::ffff:7f00:1]:{port}/image.jpg",
    "http://169.254.169.254/latest/meta-data/",
    "http://[fd00:ec2::254]/latest/meta-data/",
    "http://0.0.0.0:{port}/image.jpg",
    "http://private.test:{port}/image.jpg",
    "http://rebound.test:{port}/image.jpg",
    "http://2130706433:{port}/image.jpg",
    "http://127.1:{port}/image.jpg",
    "http://0x7f.0.0.1:{port}/image.jpg",
]

STUB_DNS = {
    "private.test": ["10.0.0.1"],
    "rebound.test": ["127.0.0.1", "::1"],
    "localhost": ["127.0.0.1", "::1"],
    "2130706433": ["127.0.0.1"],
    "0x7f.0.0.1": ["127.0.0.1"],
}


@pytest.mark.parametrize("template", REFUSED_SOURCES)
async def test_loader_refuses_private_targets(
    make_loader: LoaderFactory, origin: str, template: str
) -> None:
    port = origin.rsplit(":", 1)[1]
    loader = await make_loader(resolver=StubResolver(STUB_DNS), total_timeout=2)
    with pytest.raises(SourceForbiddenError):
        await loader.load(template.format(port=port))


async def test_real_localhost_is_refused(make_loader: LoaderFactory, origin: str) -> None:
    loader = await make_loader()  # the system resolver
    with pytest.raises(SourceForbiddenError, match="loopback"):
        await loader.load(origin.replace("127.0.0.1", "localhost") + "/image.jpg")


@pytest.mark.parametrize("template", REFUSED_SOURCES)
async def test_loader_refuses_redirects_to_private_targets(
    make_loader: LoaderFactory, origin: str, alt_origin: str, template: str
) -> None:
    port = origin.rsplit(":", 1)[1]
    loader = await make_loader(
        resolver=StubResolver(STUB_DNS), allowed_networks=(f"{ALT_HOST}/32",), total_timeout=2
    )
    # The opened address itself serves ...
    assert (await loader.load(f"{alt_origin}/image.jpg")).data == IMAGE
    # ... but its redirects to any refused target are refused, although 127.0.0.1 is live.
    target = template.format(port=port)
    with pytest.raises(SourceForbiddenError):
        await loader.load(f"{alt_origin}/redirect?url={target}")


async def test_allow_private_networks_opts_out(make_loader: LoaderFactory, origin: str) -> None:
    loader = await make_loader(allow_private_networks=True)
    assert (await loader.load(f"{origin}/image.jpg")).data == IMAGE
