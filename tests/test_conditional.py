"""Conditional requests (RFC 9110 section 13) on the image routes, the hit counts in /health, and
connections that stay open after a 304: the same answers from the memoised fast path and from Flask."""

from __future__ import annotations

import http.client
from email.utils import formatdate, parsedate_to_datetime

import pytest
import requests

LINK = "/prompt/conditional%20fox?width=64&height=64"
# The same image by another URI: its first request goes through Flask (the memo knows URIs, not images).
SAME_IMAGE = "/prompt/conditional%20fox?height=64&width=64"


@pytest.fixture
def etag(api) -> str:
    first = api.get(LINK)
    assert first.status_code == 200
    return first.headers["ETag"]


def both_paths(api, headers: dict[str, str]) -> list[requests.Response]:
    """The first request for SAME_IMAGE (Flask), then two more (the memoised fast path)."""
    return [api.get(SAME_IMAGE, headers=headers) for _ in range(3)]


@pytest.mark.slow
@pytest.mark.parametrize("header", [
    "{etag}",
    '"something-else", {etag}',
    '"a", "b",{etag} , "c"',
    "*",
    "W/{etag}",
    'W/"other", W/{etag}',
])
def test_if_none_match_forms_answer_304_on_every_request(api, etag, header):
    answers = both_paths(api, {"If-None-Match": header.format(etag=etag)})
    assert [r.status_code for r in answers] == [304, 304, 304]
    assert all(r.content == b"" for r in answers)
    assert len({tuple(sorted(r.headers.items() - {("Date", r.headers.get("Date"))})) for r in answers}) == 1
    assert answers[0].headers["ETag"] == etag and "immutable" in answers[0].headers["Cache-Control"]
    assert "Content-Type" not in answers[0].headers


def test_a_tag_that_does_not_match_gets_the_image(api, etag):
    answers = both_paths(api, {"If-None-Match": '"nope", W/"also-nope"'})
    assert [r.status_code for r in answers] == [200, 200, 200]
    assert answers[0].content == answers[2].content and answers[0].headers["ETag"] == etag


@pytest.mark.slow
def test_if_modified_since(api, etag):
    last_modified = api.get(LINK).headers["Last-Modified"]
    later = formatdate(parsedate_to_datetime(last_modified).timestamp() + 60, usegmt=True)
    earlier = formatdate(parsedate_to_datetime(last_modified).timestamp() - 60, usegmt=True)
    assert [r.status_code for r in both_paths(api, {"If-Modified-Since": last_modified})] == [304, 304, 304]
    assert api.get(LINK, headers={"If-Modified-Since": later}).status_code == 304
    assert api.get(LINK, headers={"If-Modified-Since": earlier}).status_code == 200
    assert api.get(LINK, headers={"If-Modified-Since": "not a date"}).status_code == 200
    # If-None-Match wins over If-Modified-Since (RFC 9110 13.2.2): a different tag means "send it".
    assert api.get(LINK, headers={"If-None-Match": '"other"', "If-Modified-Since": later}).status_code == 200


@pytest.mark.slow
def test_head_and_stored_image_route_follow_the_same_rules(api, etag):
    assert requests.head(api.url + LINK, headers={"If-None-Match": f"W/{etag}"}, timeout=10).status_code == 304
    url = api.get(LINK + "&format=json").json()["url"]
    assert api.get(url, headers={"If-None-Match": f'"x", {etag}'}).status_code == 304
    assert api.get(url, headers={"If-None-Match": "*"}).status_code == 304


def test_a_304_keeps_the_connection_open(api, etag):
    host, port = api.url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        conn.request("GET", SAME_IMAGE, headers={"If-None-Match": etag})  # Flask
        first = conn.getresponse()
        first.read()
        sock = conn.sock
        assert first.status == 304 and first.getheader("Connection") != "close"
        for _ in range(2):  # the fast path, on the same socket
            conn.request("GET", SAME_IMAGE, headers={"If-None-Match": etag})
            again = conn.getresponse()
            again.read()
            assert again.status == 304 and again.getheader("Connection") != "close"
        conn.request("GET", SAME_IMAGE)
        full = conn.getresponse()
        assert full.status == 200 and len(full.read()) > 0
        assert conn.sock is sock  # never reconnected
    finally:
        conn.close()


@pytest.mark.slow
def test_fast_path_hits_are_counted_in_health(api):
    before = api.get("/health").json()["cache"]
    api.get("/prompt/counted%20fox?width=64&height=64")  # miss
    for _ in range(10):
        assert api.get("/prompt/counted%20fox?width=64&height=64").headers["X-LinkPix-Cache"] == "hit"
    after = api.get("/health").json()["cache"]
    assert after["misses"] - before["misses"] == 1
    assert after["hits"] - before["hits"] == 10
