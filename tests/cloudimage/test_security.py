"""``ci_sign`` and ``ci_seal``: the documented algorithms (vectors from Cloudimage's own Ruby
client), and per-tenant enforcement end to end."""

from __future__ import annotations

import pytest

from tests.cloudimage.conftest import SALT, MakeClient, size_of, tenants_config
from thumbor_py.cloudimage import security

MILUV = {"Host": "media.miluv.app"}


@pytest.mark.parametrize(
    ("signed_text", "length", "expected"),
    [
        pytest.param("/assets/image.jpg", 18, "8e71efd440164f3cc8", id="no-params"),
        pytest.param("/assets/image.jpg?w=200", 18, "84c81ef20852013046", id="params"),
        pytest.param("/assets/image.jpg?w=200", 8, "84c81ef2", id="short"),
        pytest.param(
            "/assets/image.jpg?ci_info=1&h=100&w=200", 18, "40bd5a1d99455fe5cf", id="several"
        ),
    ],
)
def test_signature_vectors(signed_text: str, length: int, expected: str) -> None:
    assert security.signature("salt", signed_text, length) == expected


@pytest.mark.parametrize(
    ("eqs_query", "expected"),
    [
        pytest.param("", "57e9278520bd99de50", id="nothing-sealed"),
        pytest.param("blur=20&h=300&w=300", "b7b7a8fde707bed4b4", id="sealed"),
        pytest.param("blur=20&h=300", "a49adc8f592ef99188", id="partial"),
    ],
)
def test_seal_vectors(eqs_query: str, expected: str) -> None:
    eqs = security.encode_eqs(eqs_query) if eqs_query else ""
    assert security.seal("salt", "/assets/image.jpg", eqs) == expected
    if eqs_query:
        assert "=" not in eqs  # unpadded
        assert "&".join(f"{k}={v}" for k, v in security.decode_eqs(eqs)) == eqs_query


def test_matches_is_case_insensitive_and_exact() -> None:
    assert security.matches("8e71efd440164f3cc8", "8E71EFD440164F3CC8")
    assert not security.matches("8e71efd440164f3cc8", "8e71efd440164f3cc")
    assert not security.matches("8e71efd440164f3cc8", "8e71efd440164f3cc8\u00e9")


def _signed(path_and_query: str) -> str:
    sign = security.signature(SALT, path_and_query)
    joiner = "&" if "?" in path_and_query else "?"
    return f"/v7{path_and_query}{joiner}ci_sign={sign}"


async def test_signature_required(make_client: MakeClient, origin: str) -> None:
    client = await make_client(tenants_config(origin, salt=SALT, security="signature"))
    good = _signed("/image.jpg?w=120&h=80")
    response = await client.get(good, headers=MILUV)
    assert response.status == 200, await response.text()
    assert size_of(await response.read()) == (120, 80)
    for bad in (
        "/v7/image.jpg?w=120&h=80",
        good.replace("w=120", "w=121"),
        good[:-1] + ("0" if good[-1] != "0" else "1"),
    ):
        response = await client.get(bad, headers=MILUV)
        assert response.status == 400, bad
        assert "ci_sign" in await response.text() or "requires" in await response.text()


async def test_signature_may_sit_between_parameters(make_client: MakeClient, origin: str) -> None:
    client = await make_client(tenants_config(origin, salt=SALT, security="signature"))
    sign = security.signature(SALT, "/image.jpg?h=80&w=120")
    response = await client.get(f"/v7/image.jpg?h=80&ci_sign={sign}&w=120", headers=MILUV)
    assert response.status == 200, await response.text()


async def test_seal_protects_sealed_parameters(make_client: MakeClient, origin: str) -> None:
    client = await make_client(tenants_config(origin, salt=SALT, security="seal"))
    eqs = security.encode_eqs("w=120&h=80")
    seal = security.seal(SALT, "/image.jpg", eqs)
    # An unsealed w=999 cannot override the sealed w; other parameters still apply.
    path = f"/v7/image.jpg?ci_eqs={eqs}&ci_seal={seal}&w=999&grey=1"
    response = await client.get(path, headers=MILUV)
    assert response.status == 200, await response.text()
    assert size_of(await response.read()) == (120, 80)
    forged = security.encode_eqs("w=2000&h=2000")
    response = await client.get(f"/v7/image.jpg?ci_eqs={forged}&ci_seal={seal}", headers=MILUV)
    assert response.status == 400
    assert await response.text() == "ci_seal does not match"


async def test_either_accepted_when_configured(make_client: MakeClient, origin: str) -> None:
    client = await make_client(tenants_config(origin, salt=SALT, security="signature_or_seal"))
    seal = security.seal(SALT, "/image.jpg", "")
    for path in (_signed("/image.jpg?w=50"), f"/v7/image.jpg?ci_seal={seal}&w=50"):
        response = await client.get(path, headers=MILUV)
        assert response.status == 200, path


async def test_unsigned_only_for_allowlisted_origins(make_client: MakeClient, origin: str) -> None:
    public = r"^http://127\.0\.0\.1:\d+/image\.jpg$"
    settings = {"salt": SALT, "security": "signature", "unsigned_origins": [public]}
    client = await make_client(tenants_config(origin, **settings))
    for path in (f"/v7/{origin}/image.jpg?w=50", "/v7/image.jpg?w=50"):
        response = await client.get(path, headers=MILUV)
        assert response.status == 200, await response.text()
    # Another image of the same origin is not in the unsigned list: it must be signed.
    response = await client.get("/v7/chunked.jpg?w=50", headers=MILUV)
    assert response.status == 400
    assert await response.text() == "this host requires a signature"


async def test_bad_eqs_is_400(make_client: MakeClient, origin: str) -> None:
    client = await make_client(tenants_config(origin, salt=SALT, security="seal"))
    eqs = "!!!"
    seal = security.seal(SALT, "/image.jpg", eqs)
    response = await client.get(f"/v7/image.jpg?ci_eqs={eqs}&ci_seal={seal}", headers=MILUV)
    assert response.status == 400
