"""``/v1/docs`` works without network: the page names no other host, and this server serves
every file the page loads, without a token."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import httpx


class _References(HTMLParser):
    """Every ``src`` and ``href`` of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.urls += [value for name, value in attrs if name in ("src", "href") and value]


def references(page: str) -> list[str]:
    """The page's ``src``/``href`` attributes and the URL its script gives Swagger UI."""
    parser = _References()
    parser.feed(page)
    return parser.urls + re.findall(r"url: '([^']+)'", page)


def test_the_docs_page_loads_only_files_this_server_serves(anon: httpx.Client) -> None:
    response = anon.get("/v1/docs")
    assert response.status_code == 200
    page = response.text
    assert "http://" not in page
    assert "https://" not in page
    urls = references(page)
    assert "/v1/openapi.json" in urls
    assert {u.rsplit("/", 1)[-1] for u in urls} >= {"swagger-ui-bundle.js", "swagger-ui.css"}
    for url in urls:
        assert url.startswith("/v1/"), url
        asset = anon.get(url)
        assert asset.status_code == 200, url
        assert asset.content, url
    script = anon.get("/v1/docs/assets/swagger-ui-bundle.js")
    assert "javascript" in script.headers["content-type"]
    assert "SwaggerUIBundle" in script.text


def test_an_unknown_asset_is_a_404(anon: httpx.Client) -> None:
    assert anon.get("/v1/docs/assets/nothing.js").status_code == 404
