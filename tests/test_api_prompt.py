"""GET /prompt/<text> over real sockets: waitress serving LinkPix, LinkPix driving the simulator."""

from __future__ import annotations

import io
import json
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from PIL import Image

from linkpix.simulator.images import seed_colour


def png_size(data: bytes) -> tuple[int, int]:
    with Image.open(io.BytesIO(data)) as img:
        return img.size


def test_link_becomes_image_of_requested_size(api, simulator):
    r = api.get("/prompt/a%20red%20fox?width=320&height=192")
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"] == "image/png"
    assert png_size(r.content) == (320, 192)
    assert r.headers["X-LinkPix-Cache"] == "miss"
    assert r.headers["X-LinkPix-Workflow"] == "demo.json"
    assert int(r.headers["X-LinkPix-Seed"]) >= 0
    assert "immutable" in r.headers["Cache-Control"]
    assert simulator.prompts_received == 1


def test_seed_reaches_comfyui_and_colours_the_picture(api):
    r = api.get("/prompt/fox?width=128&height=128&seed=1234")
    assert r.status_code == 200
    assert r.headers["X-LinkPix-Seed"] == "1234"
    with Image.open(io.BytesIO(r.content)) as img:
        corner = img.convert("RGB").getpixel((img.width - 1, 0))
    assert corner == seed_colour(1234)


def test_repeat_is_a_hit_with_identical_bytes_and_304(api, simulator):
    first = api.get("/prompt/same%20link?width=128&height=128")
    second = api.get("/prompt/same%20link?width=128&height=128")
    assert second.headers["X-LinkPix-Cache"] == "hit"
    assert second.content == first.content
    assert second.headers["ETag"] == first.headers["ETag"]
    assert simulator.prompts_received == 1
    cond = api.get("/prompt/same%20link?width=128&height=128", headers={"If-None-Match": first.headers["ETag"]})
    assert cond.status_code == 304 and cond.content == b""
    head = requests.head(api.url + "/prompt/same%20link?width=128&height=128", timeout=10)
    assert head.status_code == 200 and head.content == b""
    assert int(head.headers["Content-Length"]) == len(first.content)


def test_same_url_gives_same_seed_random_gives_fresh_ones(api):
    a = api.get("/prompt/deterministic?width=64&height=64")
    b = api.get("/prompt/deterministic?width=64&height=64&style=none")
    assert a.headers["X-LinkPix-Seed"] == api.get("/prompt/deterministic?width=64&height=64").headers[
        "X-LinkPix-Seed"]
    assert b.status_code == 200
    r1 = api.get("/prompt/lottery?width=64&height=64&seed=random")
    r2 = api.get("/prompt/lottery?width=64&height=64&seed=-1")
    assert r1.headers["X-LinkPix-Seed"] != r2.headers["X-LinkPix-Seed"]
    assert r1.headers["Cache-Control"] == "no-store"
    assert r2.headers["X-LinkPix-Cache"] == "miss"


def test_prompt_text_survives_slashes_plus_and_unicode(api):
    r = api.get("/prompt/AC/DC+poster%20%F0%9F%A6%8A%20%22quoted%22?format=json&width=64&height=64")
    assert r.status_code == 200, r.text
    body = r.json()
    assert "AC/DC poster 🦊 \"quoted\"" in body["prompt"]
    image = api.get(body["url"])
    assert image.status_code == 200 and image.headers["Content-Type"] == "image/png"
    assert "immutable" in image.headers["Cache-Control"]


def test_json_by_accept_header_and_other_formats(api):
    r = api.get("/prompt/owl?width=64&height=64", headers={"Accept": "application/json"})
    assert r.headers["Content-Type"].startswith("application/json")
    assert r.json()["width"] == 64 and r.json()["cache"] == "miss"
    jpeg = api.get("/prompt/owl?width=64&height=64&format=jpeg")
    assert jpeg.headers["Content-Type"] == "image/jpeg" and jpeg.content[:2] == b"\xff\xd8"
    webp = api.get("/prompt/owl?width=64&height=64&format=webp")
    assert webp.headers["Content-Type"] == "image/webp" and webp.content[8:12] == b"WEBP"


@pytest.mark.slow
def test_unknown_parameters_are_named_and_pollinations_ones_ignored(api):
    r = api.get("/prompt/cat?width=64&height=64&nologo=true&private=true&frobnicate=1")
    assert r.status_code == 200
    assert r.headers["X-LinkPix-Ignored"] == "frobnicate"


def test_each_user_has_a_cache_folder_and_names_are_checked(api, project):
    r = api.get("/prompt/cat?width=64&height=64&user=alice")
    assert r.status_code == 200
    assert list((project / "cache" / "alice").glob("*.png"))
    h = api.get("/prompt/cat?width=64&height=64", headers={"X-LinkPix-User": "bob"})
    assert h.status_code == 200 and list((project / "cache" / "bob").glob("*.png"))
    bad = api.get("/prompt/cat?user=../../etc")
    assert bad.status_code == 400 and "user" in bad.json()["message"]


def test_bad_parameters_get_clear_errors(api):
    cases = {
        "/prompt/cat?width=abc": "width",
        "/prompt/cat?width=4096&height=4096": "pixels",
        "/prompt/cat?width=100000": "8192",
        "/prompt/cat?style=nope": "kawaii",
        "/prompt/cat?workflow=nope": "demo",
        "/prompt/cat?workflow=../config": "workflow",
        "/prompt/cat?seed=banana": "seed",
        "/prompt/cat?format=gif": "png",
        "/prompt/cat?model=missing.safetensors": "demo.safetensors",
        "/prompt/": "empty",
        "/prompt/" + "x" * 5000: "4000",
    }
    for path, hint in cases.items():
        r = api.get(path)
        assert r.status_code == 400, (path, r.status_code, r.text)
        body = r.json()
        assert set(body) == {"error", "message", "details"}
        assert hint in body["message"], (path, body["message"])
        assert r.headers["Cache-Control"] == "no-store"


def test_img_clients_get_the_error_as_a_png(api):
    r = api.get("/prompt/cat?style=nope&width=300&height=200",
                headers={"Accept": "image/avif,image/webp,image/apng,image/*,*/*;q=0.8"})
    assert r.status_code == 400
    assert r.headers["Content-Type"] == "image/png"
    assert png_size(r.content) == (300, 200)


def test_comfyui_refusing_the_workflow_is_422_with_node_errors(api, project):
    graph = json.loads((project / "workflows" / "demo.json").read_text())
    sampler = next(n for n in graph.values() if n["class_type"] == "KSampler")
    sampler["inputs"]["latent_image"] = ["999", 0]  # a link to a node that does not exist
    (project / "workflows" / "broken.json").write_text(json.dumps(graph))
    r = api.get("/prompt/cat?workflow=broken&width=64&height=64")
    assert r.status_code == 422, r.text
    assert r.json()["details"]["node_errors"]


def test_runtime_failure_is_502_naming_the_node(api, simulator):
    simulator.faults.fail_class = "KSampler"
    r = api.get("/prompt/doomed?width=64&height=64")
    assert r.status_code == 502
    body = r.json()
    assert body["error"] == "execution_failed"
    assert body["details"]["node_type"] == "KSampler"


def test_unreachable_comfyui_is_503_within_two_seconds(api, simulator):
    simulator.pause()
    try:
        started = time.monotonic()
        r = api.get("/prompt/nobody%20home?width=64&height=64")
        assert time.monotonic() - started < 3.0
        assert r.status_code == 503
        assert simulator.url.split("//")[1] in r.json()["message"]
        assert api.get("/health").status_code == 503
    finally:
        simulator.resume()
    assert api.get("/health").status_code == 200


@pytest.mark.slow
def test_timeout_is_504_and_the_prompt_is_stopped(project, simulator):
    from support import ApiServer

    server = ApiServer(project, simulator.url, timeout=1.5)
    try:
        simulator.faults.hang = True
        r = server.get("/prompt/forever?width=64&height=64")
        assert r.status_code == 504, r.text
        deadline = time.monotonic() + 5
        queue = {}
        while time.monotonic() < deadline:
            queue = requests.get(simulator.url + "/queue", timeout=5).json()
            if not queue["queue_running"] and not queue["queue_pending"]:
                break
            time.sleep(0.1)
        assert queue["queue_running"] == [] and queue["queue_pending"] == []
    finally:
        simulator.faults.hang = False
        server.close()


@pytest.mark.slow
def test_identical_concurrent_requests_share_one_run(api, simulator):
    simulator.faults.step_delay = 0.05
    with ThreadPoolExecutor(10) as pool:
        responses = list(pool.map(lambda _: api.get("/prompt/crowd?width=64&height=64"), range(10)))
    assert {r.status_code for r in responses} == {200}
    assert len({r.content for r in responses}) == 1
    assert simulator.prompts_received == 1


def test_disconnecting_client_does_not_cancel_the_shared_run(api, simulator):
    simulator.faults.step_delay = 0.1
    patient: list[requests.Response] = []
    t = threading.Thread(target=lambda: patient.append(api.get("/prompt/shared?width=64&height=64")))
    try:
        requests.get(api.url + "/prompt/shared?width=64&height=64", timeout=0.3)
    except requests.Timeout:
        pass
    t.start()
    t.join(30)
    assert patient and patient[0].status_code == 200
    assert simulator.prompts_received == 1


@pytest.mark.slow
def test_too_many_pending_generations_answer_429(project, simulator):
    from support import ApiServer

    server = ApiServer(project, simulator.url, max_pending=1, threads=12)
    simulator.faults.step_delay = 0.2
    try:
        with ThreadPoolExecutor(2) as pool:
            slow = pool.submit(server.get, "/prompt/first?width=64&height=64")
            deadline = time.monotonic() + 10
            while server.services.generator.pending < 1 and time.monotonic() < deadline:
                time.sleep(0.01)
            second = server.get("/prompt/second?width=64&height=64")
            assert second.status_code == 429
            assert int(second.headers["Retry-After"]) > 0
            assert slow.result().status_code == 200
    finally:
        server.close()


def test_editing_a_style_changes_the_image_without_restart(api, project):
    url = "/prompt/cat?width=64&height=64&style=kawaii"
    first = api.get(url)
    assert api.get(url).headers["X-LinkPix-Cache"] == "hit"
    store = api.services.store
    store.update(project / "data" / "styles.json",
                 lambda styles: {**styles, "kawaii": {**styles["kawaii"], "post": "sparkles everywhere"}})
    changed = api.get(url + "&format=json")
    assert "sparkles everywhere" in changed.json()["prompt"]
    again = api.get(url)
    assert again.headers["X-LinkPix-Cache"] == "hit"  # the changed one, now cached
    assert again.headers["ETag"] != first.headers["ETag"]


def test_one_log_line_per_request(api, caplog):
    def lines() -> list[str]:
        return [r.getMessage() for r in caplog.records if r.name == "linkpix.access"]

    with caplog.at_level(logging.INFO, logger="linkpix.access"):
        api.get("/prompt/logged?width=64&height=64&user=carol")
        api.get("/prompt/logged?width=64&height=64&user=carol")
        deadline = time.monotonic() + 5  # the line is written once the response has been sent
        while len(lines()) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
    logged = lines()
    assert len(logged) == 2
    assert "200" in logged[0] and "user=carol" in logged[0] and "cache=miss" in logged[0]
    assert "cache=hit" in logged[1] and "ms" in logged[1]


def test_sizes_snap_to_the_latent_grid_and_share_the_cache(api, simulator):
    r = api.get("/prompt/grid?width=300&height=200&format=json").json()
    assert (r["width"], r["height"]) == (296, 200)
    assert r["params"]["width"] == 296
    again = api.get("/prompt/grid?width=296&height=200&format=json").json()
    assert again["cache"] == "hit" and again["url"] == r["url"]
    assert simulator.prompts_received == 1


def test_hostile_query_strings_stay_bounded(api):
    many = "&".join(f"junk{i}=1" for i in range(300))
    r = api.get(f"/prompt/cat?width=64&height=64&{many}")
    assert r.status_code == 200
    assert r.headers["X-LinkPix-Ignored"].endswith(",...(+280 more)")
    styles = api.get("/prompt/cat?style=" + ",".join(["a", "b", "c", "d", "e", "f", "g", "h", "i"]))
    assert styles.status_code == 400 and "at most 8" in styles.json()["message"]
    repeated = api.get("/prompt/cat?width=64&height=64&style=" + ",".join(["kawaii"] * 50))
    assert repeated.status_code == 200
