"""Pure checks on HTTP source URLs: scheme handling, the ``allowed_sources`` list, redirects."""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable
from dataclasses import dataclass

from yarl import URL

from thumbor_py.errors import SourceForbiddenError, UpstreamError

SCHEMES = ("http", "https")
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
_HAS_SCHEME = re.compile(r"^https?://", re.IGNORECASE)
# Proxies that merge slashes turn "http://host" into "http:/host"; undo that.
_COLLAPSED_SCHEME = re.compile(r"^(https?):/(?!/)", re.IGNORECASE)


def source_url(source: str, default_scheme: str | None) -> URL:
    """The URL to fetch for ``source`` (already percent-decoded once by the URL parser).

    Scheme-less sources get ``default_scheme://`` prepended (Thumbor prepends ``http://``)
    or, when it is None, are refused. yarl re-encodes only what is unsafe on the wire, so a
    ``%xx`` left after the parser's single decode reaches the origin unchanged.
    """
    text = _COLLAPSED_SCHEME.sub(r"\1://", source, count=1)
    if not _HAS_SCHEME.match(text):
        if default_scheme is None:
            raise SourceForbiddenError("source is not an http(s) URL")
        text = f"{default_scheme}://{text.lstrip('/')}"
    return _keep_query(parse_url(text), text)


# A query that is already percent-encoded; sent as given, so a presigned URL's stays intact.
_ENCODED_QUERY = re.compile(r"(?:[A-Za-z0-9\-._~!$&'()*+,;=:@/?]|%[0-9A-Fa-f]{2})*")


def _keep_query(url: URL, text: str) -> URL:
    """``url`` with the query exactly as ``text`` has it, when that is validly encoded
    (yarl would otherwise decode ``%2F`` and ``%3A``, and a signed query would change)."""
    query = text.partition("?")[2].partition("#")[0]
    if not query or not _ENCODED_QUERY.fullmatch(query):
        return url
    return URL.build(
        scheme=url.scheme,
        authority=url.raw_authority,
        path=url.raw_path,
        query_string=query,
        encoded=True,
    )


def canonical_url(url: URL) -> str:
    """The identity of a source URL: what yarl normalises (scheme and host lowercased, the
    default port dropped, dot segments removed, percent-encoding requoted with upper-case
    hex and unreserved characters decoded), without the fragment; the query keeps its order."""
    return str(url.with_fragment(None))


def version_of(etag: str | None, last_modified: str | None) -> str | None:
    """A response's version: its ETag, else its ``Last-Modified`` date (None: neither)."""
    if etag:
        return f"etag:{etag}"
    if last_modified:
        return f"date:{last_modified}"
    return None


def conditional_headers(version: str) -> dict[str, str]:
    """The request headers that ask whether ``version`` (from :func:`version_of`) changed."""
    kind, _, value = version.partition(":")
    return {"If-None-Match": value} if kind == "etag" else {"If-Modified-Since": value}


def parse_url(text: str) -> URL:
    """Parse an absolute http(s) URL or refuse it with a 400."""
    try:
        url = URL(text)
        host = url.host
    except (ValueError, UnicodeError) as exc:
        raise SourceForbiddenError("source is not a valid URL") from exc
    if url.scheme not in SCHEMES:
        raise SourceForbiddenError("source is not an http(s) URL")
    if not host:
        raise SourceForbiddenError("source URL has no host")
    return url


def redirect_target(url: URL, status: int, location: str | None) -> URL | None:
    """Where a response redirects to, or None when it is not a redirect."""
    if status not in REDIRECT_STATUSES:
        return None
    if not location:
        raise UpstreamError(f"upstream answered {status} without a Location")
    try:
        target = url.join(URL(location))
    except (ValueError, UnicodeError) as exc:
        raise UpstreamError("upstream redirected to an invalid URL") from exc
    if target.scheme not in SCHEMES:
        raise SourceForbiddenError("upstream redirected to a non-http(s) URL")
    return parse_url(str(target))


@dataclass(frozen=True, slots=True)
class SourceAllowlist:
    """``allowed_sources``: host globs (``*.example.com``) and full-URL regexes (``^https://…``).

    An entry starting with ``^`` is a regular expression that must match the whole URL as it
    is sent (normalised and percent-encoded); any other entry is a case-insensitive glob on the
    host name. An empty list allows every host (the SSRF guard still applies).
    """

    globs: tuple[str, ...] = ()
    patterns: tuple[re.Pattern[str], ...] = ()

    @classmethod
    def parse(cls, entries: Iterable[str]) -> SourceAllowlist:
        """Compile ``entries``; a bad regex is a ``ValueError`` naming it."""
        globs: list[str] = []
        patterns: list[re.Pattern[str]] = []
        for entry in entries:
            if entry.startswith("^"):
                try:
                    patterns.append(re.compile(entry))
                except re.error as exc:
                    raise ValueError(f"allowed_sources: bad regex {entry!r}: {exc}") from exc
            else:
                globs.append(entry.lower().rstrip("."))
        return cls(tuple(globs), tuple(patterns))

    def allows(self, url: URL) -> bool:
        """Whether ``url`` may be fetched."""
        if not self.globs and not self.patterns:
            return True
        hosts = {(url.host or "").lower().rstrip("."), (url.raw_host or "").lower().rstrip(".")}
        if any(fnmatch.fnmatchcase(host, glob) for host in hosts for glob in self.globs):
            return True
        text = str(url)
        return any(pattern.fullmatch(text) for pattern in self.patterns)
