"""The content health check against a real HTTP server: what varies by itself is learned
from two fetches, every other difference is reported as a diff."""

from __future__ import annotations

import http.server
import itertools
import threading
from collections.abc import Iterator

import pytest

from migrate.run.health import baseline, changes, refreshed, same_site_links

STATE: dict[str, object] = {"flavour": "vanilla", "menu": True}
COUNTER = itertools.count()


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        pages = {
            "/": (
                "<h1>shop</h1>\n"
                f"request {next(COUNTER)}\n"
                f"flavour: {STATE['flavour']}\n"
                "<a href='/menu'>menu</a> <a href=\"http://elsewhere.example/\">x</a>\n"
                "<img src='static/logo.png'>\n"
            ),
            "/menu": "tea\ncoffee\n" if STATE["menu"] else None,
            "/static/logo.png": "PNG",
            "/extra?x=1": f"extra {STATE['flavour']}\n",
        }
        body = pages.get(self.path)
        self.send_response(200 if body is not None else 404)
        self.end_headers()
        self.wfile.write((body or "not found").encode())

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def port() -> Iterator[int]:
    STATE.update(flavour="vanilla", menu=True)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()


def test_links_on_the_same_site_only() -> None:
    body = "<a href='/a'>a</a><a href='b?q=1#top'>b</a><a href='https://x.example/c'>c</a>"
    assert same_site_links(body, "/") == ["/a", "/b?q=1"]


def test_a_counter_varies_by_itself_and_is_no_change(port: int) -> None:
    pages = baseline(port, ["/extra?x=1"])
    assert [p.path for p in pages] == ["/", "/menu", "/static/logo.png", "/extra?x=1"]
    assert changes(port, pages) == []


def test_a_changed_line_is_shown_as_a_diff_and_the_counter_is_not(port: int) -> None:
    pages = baseline(port, ["/extra?x=1"])
    STATE["flavour"] = "chocolate"
    found = changes(port, pages)
    assert found == [
        "GET /: the page changed\n@@ line 3 @@\n-flavour: vanilla\n+flavour: chocolate",
        "GET /extra?x=1: the page changed\n@@ line 1 @@\n-extra vanilla\n+extra chocolate",
    ]


def test_a_page_gone_is_a_status_change(port: int) -> None:
    pages = baseline(port)
    STATE["menu"] = False
    assert changes(port, pages) == ["GET /menu: HTTP 404, 200 before"]


def test_what_changed_by_itself_while_the_venvs_were_built_is_no_change(port: int) -> None:
    """A line that stayed put over the two quick fetches but moves on its own later (Trac's
    "7 seconds ago"): the fetch just before the restart marks it as varying."""
    pages = baseline(port)
    STATE["flavour"] = "vanilla, 2 minutes later"
    pages = refreshed(port, pages)
    assert changes(port, pages) == []
    STATE["flavour"] = "chocolate"
    assert changes(port, pages) == []  # that line varies by itself now: no more evidence
