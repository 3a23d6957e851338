"""Cloudimage's own responsive plugin, in Debian's Chromium, against thumbor-py.

The page (page/index.html) loads the npm package ``js-cloudimage-responsive`` with
``customDomain: true`` and ``domain: media.miluv.app``. Chromium resolves that hostname to a
local TLS terminator in front of ``thumbor-py serve`` (``--host-resolver-rules``), so requests
arrive exactly as in production: ``https://media.miluv.app/v7/{origin}?w=..&h=..`` with
``Host: media.miluv.app``, routed to the tenant by that header. drive.mjs runs the browser at
a phone and a desktop size and reports what it saw; this module judges it.
"""

from __future__ import annotations

import json
import math
import subprocess
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from PIL import Image

from tests.browser import install
from tests.browser.conftest import BUCKET, DOMAIN, ORIGINALS, STRANGER, Certificate, Origin

HERE = Path(__file__).resolve().parent
# The flags the project starts Chromium with; drive.mjs adds only the pipe, the profile folder,
# the host mapping, the window size and the scale factor.
REQUIRED_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# The plugin's default limitFactor: widths it measures are rounded up to a multiple of this.
LIMIT_FACTOR = 100
ABOVE_THE_FOLD = ("hero", "fixed", "ratio")


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    width: int
    height: int
    dpr: float
    mobile: bool


SCENARIOS = (Scenario("phone", 375, 812, 2, True), Scenario("desktop", 1280, 800, 1, False))
Run = Mapping[str, Any]
Color = tuple[int, int, int]
# The colours conftest._draw paints the originals with, and the fit's background.
WHITE, BLUE, YELLOW = (255, 255, 255), (32, 96, 160), (240, 200, 40)


@pytest.fixture(scope="module")
def report(
    browser_tools: install.BrowserTools,
    origin: Origin,
    certificate: Certificate,
    thumbor_py: int,
    tmp_path_factory: pytest.TempPathFactory,
) -> Mapping[str, Any]:
    """Run drive.mjs once for every scenario; its JSON report."""
    spec = {
        "chromium": str(browser_tools.chromium),
        "domain": DOMAIN,
        "other_domains": [STRANGER],
        "server_port": thumbor_py,
        "tls": {"cert": str(certificate.cert), "key": str(certificate.key)},
        "origin": origin.images,
        "presigned": origin.presigned,
        "scenarios": [asdict(scenario) for scenario in SCENARIOS],
        "probes": [
            f"https://{DOMAIN}/v7/{origin.images}landscape.jpg?w=120&h=80",
            f"https://{STRANGER}/v7/{origin.images}landscape.jpg?w=120&h=80",
        ],
        "timeout_ms": 20_000,
        "settle_ms": 300,
        "fade_ms": 500,
        "artifacts": str(tmp_path_factory.mktemp("screenshots")),
    }
    spec_file = tmp_path_factory.mktemp("spec") / "spec.json"
    spec_file.write_text(json.dumps(spec))
    result = subprocess.run(
        [str(browser_tools.node), str(HERE / "drive.mjs"), str(spec_file)],
        cwd=HERE,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert result.returncode == 0, f"drive.mjs failed:\n{result.stderr[-4000:]}"
    (spec_file.parent / "report.json").write_text(result.stdout)  # kept for a failure's reader
    parsed: Mapping[str, Any] = json.loads(result.stdout)
    return parsed


@pytest.fixture(params=[scenario.name for scenario in SCENARIOS])
def run(request: pytest.FixtureRequest, report: Mapping[str, Any]) -> Run:
    """The report of one scenario."""
    runs = {entry["name"]: entry for entry in report["runs"]}
    found: Run = runs[request.param]
    return found


def _scenario(run: Run) -> Scenario:
    return Scenario(**run["scenario"])


def _requested_size(url: str) -> tuple[int | None, int | None]:
    query = parse_qs(urlsplit(url).query)
    width, height = query.get("w"), query.get("h")
    return (int(width[0]) if width else None, int(height[0]) if height else None)


def _served(run: Run) -> dict[str, tuple[int, int]]:
    """URL -> the pixel size the browser decoded from it."""
    return {entry["url"]: (entry["width"], entry["height"]) for entry in run["served"]}


def _is_private(url: str) -> bool:
    return f"/{BUCKET}/" in url


def _public(entries: list[dict[str, Any]], key: str) -> list[dict[str, Any]]:
    """The entries not about the presigned object (test_a_presigned_origin_... covers it)."""
    return [entry for entry in entries if not _is_private(entry[key] or "")]


def _check_loaded(image: Mapping[str, Any], origin: Origin) -> None:
    assert image["naturalWidth"] > 0, f"{image['id']} is broken: {image['currentSrc']}"
    assert image["loadedClass"], f"the plugin did not see {image['id']} load"
    # The plugin's URL: its custom domain, the API version, the origin made absolute.
    source = image["ciSrc"].split("?")[0]
    absolute = source if source.startswith("http") else origin.images + source
    assert image["currentSrc"].startswith(f"https://{DOMAIN}/v7/{absolute}?"), image


def _check_response(response: Mapping[str, Any]) -> None:
    assert response["status"] == 200, response
    assert (response["contentType"] or "").startswith("image/"), response
    assert response["host"] == DOMAIN, response


def _check_served(url: str, size: tuple[int, int]) -> None:
    """What came back has the ``w`` and ``h`` the URL asked for."""
    width, height = size
    asked_width, asked_height = _requested_size(url)
    original = ORIGINALS[urlsplit(url).path.rsplit("/", 1)[1]]
    assert asked_width is not None, url
    if asked_height is None:  # width only: the height follows the original's ratio
        asked_height = round(asked_width * original[1] / original[0])
        assert width == asked_width, url
        assert abs(height - asked_height) <= 1, (url, height)
    else:  # both: cropped (the default, func=crop) or fitted (func=fit) to exactly that
        assert (width, height) == (asked_width, asked_height), url


def _check_covers(image: Mapping[str, Any], size: tuple[int, int], dpr: float) -> None:
    """The picture covers the image's box in device pixels, and is no larger than the
    plugin's rounding: it floors the measured width, multiplies by the DPR and (for layouts
    it measures) rounds up to LIMIT_FACTOR."""
    width, height = size
    box_width, box_height = image["renderedWidth"], image["renderedHeight"]
    assert math.floor(box_width) * dpr <= width <= box_width * dpr + LIMIT_FACTOR, image
    assert width / height == pytest.approx(box_width / box_height, rel=0.02), image


def test_the_browser_is_the_device_asked_for(run: Run) -> None:
    scenario = _scenario(run)
    assert run["flags"][: len(REQUIRED_FLAGS)] == REQUIRED_FLAGS
    extra = {flag.split("=")[0] for flag in run["flags"][len(REQUIRED_FLAGS) :]}
    assert extra == {
        "--remote-debugging-pipe",
        "--user-data-dir",
        "--host-resolver-rules",
        "--window-size",
        "--force-device-scale-factor",
    }
    assert run["environment"]["innerWidth"] == scenario.width
    assert run["environment"]["devicePixelRatio"] == scenario.dpr


def test_every_image_loads_from_thumbor_py(run: Run, origin: Origin) -> None:
    assert run["aboveSettled"], "the images above the fold did not finish loading"
    assert run["lazySettled"], "the lazy image did not finish loading after the scroll"
    responses = _public(run["responses"], "url")
    for response in responses:  # first: a failure names the status and the URL
        _check_response(response)
    for image in _public(run["images"], "currentSrc"):
        _check_loaded(image, origin)
    assert len(responses) >= len(_public(run["images"], "currentSrc"))
    assert _public(run["failures"], "url") == []
    assert run["pageErrors"] == []
    assert _public(run["console"], "url") == []


def test_every_url_is_served_at_the_size_it_asks_for(run: Run) -> None:
    served = _served(run)
    assert set(served) == {entry["url"] for entry in run["responses"]}
    for url, size in served.items():
        if not _is_private(url):
            _check_served(url, size)


def test_each_image_is_as_sharp_as_its_box_and_no_larger_than_the_rounding(run: Run) -> None:
    served = _served(run)
    for image in _public(run["images"], "currentSrc"):
        _check_covers(image, served[image["currentSrc"]], _scenario(run).dpr)
    for image in run["images"]:
        if image["id"] in ("hero", "lazy"):  # widths the plugin measured: rounded up
            assert served[image["currentSrc"]][0] % LIMIT_FACTOR == 0, image


def test_the_lazy_image_loads_only_when_scrolled_to(run: Run) -> None:
    before = run["lazyBefore"]
    assert not before["requested"], "the lazy image was requested before the scroll"
    assert before["image"]["currentSrc"] == ""
    assert before["image"]["src"] is None
    after = next(image for image in run["images"] if image["id"] == "lazy")
    assert after["naturalWidth"] > 0
    assert any("lazy.jpg" in entry["url"] for entry in run["responses"])


def test_the_host_header_picks_the_tenant(run: Run) -> None:
    statuses = {urlsplit(probe["url"]).hostname: probe for probe in run["probes"]}
    assert statuses[DOMAIN]["status"] == 200
    assert (statuses[DOMAIN]["contentType"] or "").startswith("image/")
    assert statuses[STRANGER]["status"] == 421


def test_a_presigned_origin_reaches_the_bucket_intact(run: Run, origin: Origin) -> None:
    """A private original behind a presigned S3 URL (made by boto3) in ``ci-src``.

    The plugin moves the origin's query after its own parameters, each value re-encoded with
    encodeURIComponent: ``X-Amz-Credential=AKIA%2F...`` arrives as ``...=AKIA%252F...``.
    The origin (S3-like: it compares the decoded query with what was signed) must still get
    what was signed, and the browser the size it asked for.
    """
    image = next(image for image in run["images"] if image["id"] == "private")
    assert image["ciSrc"] == origin.presigned
    assert "&X-Amz-Signature=" in image["currentSrc"]
    assert origin.verdicts, "the private object was never fetched"
    refused = [path for path, valid in origin.verdicts if not valid]
    assert refused == [], f"the origin refused (SignatureDoesNotMatch): {refused[0]}"
    signed_query = urlsplit(origin.presigned).query
    for path, _ in origin.verdicts:  # byte for byte, as the issue asks
        assert urlsplit(path).query == signed_query
    _check_loaded(image, origin)
    for response in run["responses"]:
        if _is_private(response["url"]):
            _check_response(response)
    size = _served(run)[image["currentSrc"]]
    _check_served(image["currentSrc"], size)
    _check_covers(image, size, _scenario(run).dpr)


def _pixel(
    screenshot: Image.Image, box: Mapping[str, Any], x: float, y: float, dpr: float
) -> Color:
    """The screenshot's colour at (x, y), given as fractions of an image's box."""
    point = (box["left"] + x * box["renderedWidth"], box["top"] + y * box["renderedHeight"])
    pixel = screenshot.getpixel((int(point[0] * dpr), int(point[1] * dpr)))
    assert isinstance(pixel, tuple)
    return (pixel[0], pixel[1], pixel[2])


def _near(color: Color, expected: Color) -> bool:
    return all(abs(a - b) <= 40 for a, b in zip(color, expected, strict=True))


def test_fit_shows_the_whole_picture_on_the_background_colour(run: Run) -> None:
    """``ci-params="func=fit&bg_color=ffffff"`` reaches the server: the 2:1 picture is letter-
    boxed in its square box (a crop would fill it), as the browser shows it."""
    box = next(image for image in run["top"] if image["id"] == "ratio")
    dpr = _scenario(run).dpr
    with Image.open(run["topScreenshot"]) as screenshot:
        shown = screenshot.convert("RGB")
    # The picture fills the middle half of the box: white above and below it.
    for y in (0.1, 0.9):
        assert _near(_pixel(shown, box, 0.5, y, dpr), WHITE), ("background", y)
    assert _near(_pixel(shown, box, 0.5, 0.3, dpr), BLUE), "the picture's top edge"
    assert _near(_pixel(shown, box, 0.6, 0.5, dpr), YELLOW), "the picture's centre"
