"""The smaller findings of issue 20 (item 6), each over real sockets against the simulator."""

from __future__ import annotations

import logging
import re
import sqlite3
import time
from email.utils import parsedate_to_datetime

import pytest
import requests
from fronts_support import png_bytes
from jobs_support import JobsServer
from support import ApiServer

from linkpix.comfy.stops import FILE_NAME as STOPS_FILE
from linkpix.comfy.stops import StopList


@pytest.fixture
def strict(project, simulator):
    server = JobsServer(project, simulator.url, webhook_allow=[])
    try:
        yield server
    finally:
        server.close()


def test_a_5000_digit_seed_is_answered_as_a_too_long_number(strict):
    body = '{"prompt": "x", "seed": ' + "9" * 5000 + "}"
    r = strict.post("/generate", data=body, headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and "5000 digits" in r.json()["message"], r.text


def test_an_enormous_width_is_not_echoed_digit_by_digit(strict):
    r = strict.post("/generate", json={"prompt": "x", "width": 1e308})
    assert r.status_code == 400, r.text
    assert not re.search(r"\d{40}", r.text) and len(r.json()["message"]) < 300, r.text


@pytest.mark.parametrize("url", ["http://1.1.1.1:0/", "http://[::127.0.0.1]:9/", "http://[64:ff9b::7f00:1]:9/",
                                 "http://[2002:7f00:1::]:9/", "http://[::ffff:127.0.0.1]:9/"])
def test_webhooks_to_port_0_or_to_loopback_in_ipv6_dress_are_refused(strict, url):
    r = strict.post("/generate", json={"prompt": "x", "width": 64, "height": 64, "webhook_url": url})
    assert r.status_code == 400 and r.json()["details"]["parameter"] == "webhook_url", r.text


def test_half_a_million_unknown_params_are_refused(strict):
    params = {f"p{i}": 1 for i in range(500_000)}
    r = strict.post("/generate", json={"prompt": "x", "params": params}, timeout=60)
    assert r.status_code in (400, 413) and "at most" in r.json()["message"], r.text[:300]
    r = strict.post("/generate", json={"prompt": "x", "params": {f"p{i}": 1 for i in range(300)}})
    assert r.status_code == 400 and "at most 200" in r.json()["message"]


def test_last_modified_is_never_after_date_on_a_miss(strict):
    for i in range(12):
        r = strict.get(f"/prompt/a%20miss%20number%20{i}?width=64&height=64")
        assert r.headers["X-LinkPix-Cache"] == "miss"
        assert parsedate_to_datetime(r.headers["Last-Modified"]) <= parsedate_to_datetime(r.headers["Date"])
        time.sleep(0.09)  # the misses land at different fractions of a second


def test_the_204_that_ends_an_event_stream_has_no_content_type(strict):
    job_id = strict.submit(prompt="a finished job")
    strict.wait_for(job_id)
    r = strict.get(f"/jobs/{job_id}/events", headers={"Last-Event-ID": "9999"})
    assert r.status_code == 204 and "Content-Type" not in r.headers, r.headers


def test_a1111_options_are_checked_before_they_are_stored(strict):
    url = strict.url + "/sdapi/v1/options"
    for bad in ({"sd_vae": -68239957}, {"CLIP_stop_at_last_layers": False}, {"CLIP_stop_at_last_layers": 99}):
        r = requests.post(url, json=bad, timeout=30)
        assert r.status_code == 400, (bad, r.text)
    assert requests.post(url, json={"sd_vae": "Automatic", "CLIP_stop_at_last_layers": 2}, timeout=30).ok
    got = requests.get(url, timeout=30).json()
    assert got["sd_vae"] == "Automatic" and got["CLIP_stop_at_last_layers"] == 2


def test_old_stops_on_a_backend_no_longer_configured_are_forgotten(project, simulator, caplog):
    data = project / "data"
    stops = StopList(data / STOPS_FILE)
    stops.add("http://127.0.0.1:1", "old-prompt", "a test")
    stops.add("http://127.0.0.1:1", "new-prompt", "a test")
    stops.close()
    with sqlite3.connect(data / STOPS_FILE) as db:
        db.execute("UPDATE stops SET added = added - 7200 WHERE prompt_id = 'old-prompt'")
    caplog.set_level(logging.INFO, logger="linkpix")
    server = JobsServer(project, simulator.url)
    try:
        messages = [r.getMessage() for r in caplog.records]
        assert any("forgot 1 prompt(s)" in m for m in messages), messages
        assert any("1 prompt(s) wait to be stopped" in m for m in messages), messages
    finally:
        server.close()
    again = StopList(data / STOPS_FILE)
    assert again.count("http://127.0.0.1:1") == 1
    again.close()


def test_with_both_backends_down_the_503_names_both(project):
    server = ApiServer(project, None, comfyui_urls=["http://127.0.0.1:9", "http://127.0.0.1:11"])
    try:
        r = server.get("/prompt/nobody%20home?width=64&height=64")
        assert r.status_code == 503, r.text
        assert "127.0.0.1:9" in r.json()["message"] and "127.0.0.1:11" in r.json()["message"], r.text
    finally:
        server.close()


def test_an_unknown_output_format_on_the_openai_edit_is_a_400(strict):
    files = {"image": ("image.png", png_bytes(), "image/png"), "mask": ("mask.png", png_bytes(), "image/png")}
    r = requests.post(strict.url + "/v1/images/edits", files=files, data={"prompt": "x", "output_format": "bmp"},
                      timeout=60)
    assert r.status_code == 400 and "output_format" in r.text, r.text
