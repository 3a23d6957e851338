"""The filesystem loader never reads outside its root, whatever the path looks like."""

from __future__ import annotations

import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from loaders.file import FileLoader, resolve_inside
from thumbor_py.errors import (
    HttpError,
    SourceForbiddenError,
    SourceNotFoundError,
    SourceTooLargeError,
)
from thumbor_py.plugins import Loader, PluginContext
from thumbor_py.url import parse

SECRET = b"top secret, outside the root"
IMAGE = b"\xff\xd8\xff image bytes"
MAX_BYTES = 1024


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """``tmp_path/root`` with a few files; ``tmp_path/secret.txt`` lies outside it."""
    (tmp_path / "secret.txt").write_bytes(SECRET)
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "a.jpg").write_bytes(SECRET)
    root = tmp_path / "root"
    (root / "sub").mkdir(parents=True)
    (root / "a.jpg").write_bytes(IMAGE)
    (root / "sub" / "b.jpg").write_bytes(IMAGE)
    (root / "my image.jpg").write_bytes(IMAGE)
    (root / "image2%20.jpg").write_bytes(IMAGE)  # a name that really holds "%20"
    (root / "café.jpg").write_bytes(IMAGE)
    (root / "big.jpg").write_bytes(b"x" * (MAX_BYTES + 1))
    (root / "exact.jpg").write_bytes(b"x" * MAX_BYTES)
    (root / "link-out.jpg").symlink_to(tmp_path / "secret.txt")
    (root / "dir-out").symlink_to(tmp_path / "outside")
    (root / "link-in.jpg").symlink_to(root / "a.jpg")
    (root / "loop").symlink_to(root / "loop")
    return root


@pytest.fixture
def executor() -> Iterator[ThreadPoolExecutor]:
    with ThreadPoolExecutor(max_workers=2) as pool:
        yield pool


@pytest.fixture
def loader(root: Path, executor: ThreadPoolExecutor) -> FileLoader:
    context = PluginContext(max_source_bytes=MAX_BYTES, executor=executor)
    return FileLoader(FileLoader.Settings(root=str(root)), context)


def test_file_loader_satisfies_the_loader_protocol(loader: FileLoader) -> None:
    assert isinstance(loader, Loader)


@pytest.mark.parametrize(
    "url_image",
    [
        pytest.param("a.jpg", id="plain"),
        pytest.param("sub/b.jpg", id="subfolder"),
        pytest.param("/a.jpg", id="leading-slash-is-the-root"),
        pytest.param("sub/../a.jpg", id="dotdot-that-stays-inside"),
        pytest.param("./a.jpg", id="dot"),
        pytest.param("my%20image.jpg", id="encoded-space"),
        pytest.param("caf%C3%A9.jpg", id="utf8"),
        pytest.param("image2%20.jpg", id="percent-named-file-literal-fallback"),
        pytest.param("link-in.jpg", id="symlink-inside-root"),
        pytest.param("exact.jpg", id="exactly-at-size-limit"),
    ],
)
async def test_loads_files_inside_the_root(loader: FileLoader, url_image: str) -> None:
    source = parse(f"/unsafe/{url_image}").source
    loaded = await loader.load(source)
    assert loaded.data in (IMAGE, b"x" * MAX_BYTES)
    assert loaded.etag
    assert loaded.last_modified is not None


# The image part as it appears in the URL; the loader gets it percent-decoded once, like
# every other source.
@pytest.mark.parametrize(
    ("url_image", "error"),
    [
        pytest.param("../secret.txt", SourceForbiddenError, id="dotdot"),
        pytest.param("sub/../../secret.txt", SourceForbiddenError, id="nested-dotdot"),
        pytest.param("%2e%2e/secret.txt", SourceForbiddenError, id="encoded-dotdot"),
        pytest.param("%2E%2E/secret.txt", SourceForbiddenError, id="encoded-dotdot-upper"),
        pytest.param("..%2fsecret.txt", SourceForbiddenError, id="encoded-slash"),
        pytest.param("%2e%2e%2fsecret.txt", SourceForbiddenError, id="fully-encoded"),
        pytest.param("..%5csecret.txt", SourceNotFoundError, id="backslash-is-a-name"),
        pytest.param("%252e%252e/secret.txt", SourceNotFoundError, id="double-encoded"),
        pytest.param("%252e%252e%252fsecret.txt", SourceNotFoundError, id="double-encoded-slash"),
        pytest.param("..%00/secret.txt", SourceForbiddenError, id="nul-byte"),
        pytest.param("a.jpg%00.png", SourceForbiddenError, id="nul-byte-suffix"),
        pytest.param("link-out.jpg", SourceForbiddenError, id="symlink-out"),
        pytest.param("dir-out/a.jpg", SourceForbiddenError, id="symlinked-dir-out"),
        pytest.param("sub", SourceNotFoundError, id="directory"),
        pytest.param("", SourceNotFoundError, id="root-itself"),
        pytest.param("missing.jpg", SourceNotFoundError, id="missing"),
        pytest.param("a.jpg/x", SourceNotFoundError, id="file-as-folder"),
        pytest.param("big.jpg", SourceTooLargeError, id="over-max-source-bytes"),
        pytest.param("loop", SourceNotFoundError, id="symlink-loop"),
        pytest.param("x" * 300 + ".jpg", SourceNotFoundError, id="name-too-long"),
        pytest.param("/".join(["d"] * 3000), SourceNotFoundError, id="path-too-long"),
    ],
)
async def test_hostile_paths_are_refused(
    loader: FileLoader, url_image: str, error: type[HttpError]
) -> None:
    source = parse(f"/unsafe/{url_image or 'x'}").source if url_image else ""
    with pytest.raises(error):
        await loader.load(source)


@pytest.mark.parametrize(
    "source",
    [
        pytest.param("/etc/passwd", id="absolute-is-under-root"),
        pytest.param("//etc/passwd", id="double-slash"),
        pytest.param(str(Path("/").resolve() / "tmp" / "secret.txt"), id="absolute-tmp"),
    ],
)
async def test_absolute_paths_stay_under_the_root(loader: FileLoader, source: str) -> None:
    with pytest.raises(SourceNotFoundError):
        await loader.load(source)


async def test_absolute_path_of_a_root_file_is_read_from_the_root(
    loader: FileLoader, root: Path
) -> None:
    # "/a.jpg" means root/a.jpg, never the filesystem's /a.jpg.
    assert (await loader.load("/a.jpg")).data == IMAGE


@pytest.mark.parametrize(
    ("relative", "escapes"),
    [
        pytest.param("a.jpg", False, id="inside"),
        pytest.param("../secret.txt", True, id="parent"),
        pytest.param("sub/../../secret.txt", True, id="nested-parent"),
        pytest.param("link-out.jpg", True, id="symlink-out"),
        pytest.param("/etc/passwd", False, id="absolute-re-rooted"),
        pytest.param("..", True, id="bare-dotdot"),
    ],
)
def test_resolve_inside(root: Path, relative: str, escapes: bool) -> None:
    resolved_root = root.resolve()
    if escapes:
        with pytest.raises(SourceForbiddenError):
            resolve_inside(resolved_root, relative)
    else:
        assert resolve_inside(resolved_root, relative).is_relative_to(resolved_root)


def test_root_that_is_not_a_folder_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not a folder"):
        FileLoader(FileLoader.Settings(root=str(tmp_path / "nope")), PluginContext(1))


async def test_unreadable_file_is_not_found(loader: FileLoader, root: Path) -> None:
    if os.geteuid() == 0:
        pytest.skip("root reads every file")
    (root / "locked.jpg").write_bytes(IMAGE)
    (root / "locked.jpg").chmod(0)
    with pytest.raises(SourceNotFoundError):
        await loader.load("locked.jpg")


async def test_fifo_is_not_read(loader: FileLoader, root: Path) -> None:
    # Opening a FIFO for reading blocks until a writer appears: a render thread would hang.
    os.mkfifo(root / "pipe.jpg")
    with pytest.raises(SourceNotFoundError):
        await loader.load("pipe.jpg")


# --- identity and revalidation (cache coherence) -------------------------------------------


@pytest.mark.parametrize(
    "spelling",
    [
        pytest.param("a.jpg", id="plain"),
        pytest.param("/a.jpg", id="leading-slash-from-%2F"),
        pytest.param("./a.jpg", id="dot"),
        pytest.param("sub/../a.jpg", id="dotdot"),
        pytest.param("sub//..//./a.jpg", id="slashes-and-dots"),
        pytest.param("//a.jpg", id="double-slash"),
    ],
)
async def test_every_spelling_of_one_file_has_one_identity(
    loader: FileLoader, spelling: str
) -> None:
    assert loader.identity(spelling) == "a.jpg"
    assert (await loader.load(spelling)).identity == "a.jpg"


@pytest.mark.parametrize(
    "spelling",
    [
        pytest.param("../a.jpg", id="parent"),
        pytest.param("sub/../../a.jpg", id="nested-parent"),
        pytest.param("a.jpg\x00", id="nul"),
    ],
)
def test_an_identity_above_the_root_is_refused(loader: FileLoader, spelling: str) -> None:
    with pytest.raises(SourceForbiddenError):
        loader.identity(spelling)


async def test_replacing_a_file_changes_its_version(loader: FileLoader, root: Path) -> None:
    version = (await loader.load("a.jpg")).version
    assert version is not None
    assert await loader.unchanged("/a.jpg", version)
    replacement = root / "a.tmp"
    replacement.write_bytes(IMAGE + b"-new")
    os.replace(replacement, root / "a.jpg")
    assert not await loader.unchanged("a.jpg", version)
    assert (await loader.load("a.jpg")).version != version
    os.unlink(root / "a.jpg")
    assert not await loader.unchanged("a.jpg", version)  # gone counts as changed
