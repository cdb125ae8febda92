"""Does an app answer the same pages after the migration? Content, not only status.

Before the migration each page of an app — ``/``, the same-site links found on it (up to
:data:`MAX_PAGES`) and the paths given with ``--url`` — is fetched twice, and once more
just before the restart (:func:`refreshed`, after the venvs were built: "7 seconds ago"
has become "2 minutes ago" by then): lines that differ between those fetches (a clock, a
relative time, a CSRF token, a request counter) vary by themselves and are ignored later.
After the restart every page is fetched again; a different status, or a difference in any
other line, is a change the migration made, shown as a unified diff.
"""

from __future__ import annotations

import difflib
import http.client
import re
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

MAX_PAGES = 10
"""Pages per app: ``/``, then same-site links from it, then ``--url`` paths."""
MAX_BODY = 2 * 1024 * 1024
MAX_DIFF_LINES = 40
_TIMEOUT = 10.0
_LINK = re.compile(rb"""(?:href|src)\s*=\s*["']([^"'#]+)""", re.I)


@dataclass(frozen=True)
class Page:
    """One page as it answered before the migration."""

    path: str
    status: int | None
    lines: tuple[str, ...]
    """The body of the first fetch, as lines."""
    varying: frozenset[int]
    """Indices of ``lines`` that another fetch answered otherwise."""
    grows: frozenset[int]
    """Indices before which another fetch had lines of its own."""


def fetch(port: int, path: str) -> tuple[int | None, str]:
    """``GET path`` on 127.0.0.1:``port``: (status, body as text); (None, why) on no answer."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=_TIMEOUT)
    try:
        connection.request("GET", path, headers={"User-Agent": "concentric-migrate"})
        response = connection.getresponse()
        body = response.read(MAX_BODY)
        return response.status, body.decode("utf-8", "replace")
    except (OSError, http.client.HTTPException) as exc:
        return None, f"no answer: {exc}"
    finally:
        connection.close()


def baseline(port: int, extra: Sequence[str] = ()) -> tuple[Page, ...]:
    """The app's pages as they answer now, each fetched twice."""
    status, body = fetch(port, "/")
    paths = ["/", *same_site_links(body, "/")]
    paths = list(dict.fromkeys([*paths[:MAX_PAGES], *extra]))
    pages = []
    for path in paths:
        first = (status, body) if path == "/" else fetch(port, path)
        second = fetch(port, path)
        pages.append(_page(path, first, second))
    return tuple(pages)


def refreshed(port: int, pages: Sequence[Page]) -> tuple[Page, ...]:
    """The pages with what changed since they were first fetched marked as varying too; a
    page whose status changed by itself is dropped (there is nothing to compare it with)."""
    out = []
    for page in pages:
        status, body = fetch(port, page.path)
        if status != page.status:
            continue
        later = _page(page.path, (page.status, "\n".join(page.lines)), (status, body))
        out.append(
            Page(
                page.path,
                page.status,
                page.lines,
                page.varying | later.varying,
                page.grows | later.grows,
            )
        )
    return tuple(out)


def changes(port: int, pages: Sequence[Page]) -> list[str]:
    """How the app's pages answer differently now: one readable entry per page."""
    found = []
    for page in pages:
        status, body = fetch(port, page.path)
        if status != page.status:
            found.append(f"GET {page.path}: HTTP {status or 'no answer'}, {page.status} before")
            continue
        diff = _diff(page, tuple(body.splitlines()))
        if diff:
            found.append(f"GET {page.path}: the page changed\n" + "\n".join(diff))
    return found


def same_site_links(body: str, base: str) -> list[str]:
    """Paths of the links and sources on a page that stay on the same site."""
    out = []
    for match in _LINK.finditer(body.encode("utf-8", "replace")):
        target = urljoin(base, match.group(1).decode("utf-8", "replace").strip())
        parts = urlsplit(target)
        if parts.scheme or parts.netloc or not parts.path.startswith("/"):
            continue
        out.append(parts.path + (f"?{parts.query}" if parts.query else ""))
    return list(dict.fromkeys(out))


def _page(path: str, first: tuple[int | None, str], second: tuple[int | None, str]) -> Page:
    lines = tuple(first[1].splitlines())
    other = tuple(second[1].splitlines())
    varying: set[int] = set()
    grows: set[int] = set()
    matcher = difflib.SequenceMatcher(None, lines, other, autojunk=False)
    for tag, i1, i2, _j1, _j2 in matcher.get_opcodes():
        if tag in ("replace", "delete"):
            varying.update(range(i1, i2))
        if tag in ("replace", "insert"):
            grows.add(i1)
    return Page(path, first[0], lines, frozenset(varying), frozenset(grows))


def _diff(page: Page, now: tuple[str, ...]) -> list[str]:
    """The unified diff of ``now`` against the page, hunks of varying lines left out."""
    matcher = difflib.SequenceMatcher(None, page.lines, now, autojunk=False)
    out: list[str] = []
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            continue
        if tag == "insert" and i1 in page.grows:
            continue
        if tag != "insert" and set(range(i1, i2)) <= page.varying:
            continue
        pairs = list(zip(range(i1, i2), range(j1, j2), strict=False))
        if tag == "replace" and i2 - i1 == j2 - j1:
            # Line for line: a line that varies by itself is no part of the difference.
            pairs = [(i, j) for i, j in pairs if i not in page.varying]
            out.append(f"@@ line {pairs[0][0] + 1} @@")
            out.extend(f"-{page.lines[i]}" for i, _ in pairs)
            out.extend(f"+{now[j]}" for _, j in pairs)
        else:
            out.append(f"@@ line {i1 + 1} @@")
            out.extend(f"-{line}" for line in page.lines[i1:i2])
            out.extend(f"+{line}" for line in now[j1:j2])
        if len(out) > MAX_DIFF_LINES:
            return [*out[:MAX_DIFF_LINES], "[...]"]
    return out
