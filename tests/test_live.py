"""Live links (`?live=1`) over real sockets: waitress with upgrades on (as app.py serves), the simulator."""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from fronts_support import FrontServer
from live_support import get_live
from PIL import Image
from support import ApiServer

from linkpix.simulator import SimulatorServer


@pytest.fixture
def live_api(project: Path, slow_sim: SimulatorServer) -> Iterator[FrontServer]:
    server = FrontServer(project, slow_sim.url)
    try:
        yield server
    finally:
        server.close()


def test_a_new_link_streams_card_previews_then_the_plain_image(live_api, slow_sim):
    answer = get_live(live_api.url + "/prompt/a%20red%20fox?live=1&steps=10")
    assert answer.status == 200
    assert answer.headers["content-type"].startswith("multipart/x-mixed-replace; boundary=")
    assert answer.headers["cache-control"] == "no-store"
    kinds = [p.kind for p in answer.parts]
    assert kinds[0] == "card" and kinds[-1] == "final"
    assert kinds.count("preview") >= 2
    assert answer.raw_body.endswith(b"--\r\n")  # the closing boundary
    assert answer.parts[0].arrived - answer.started < 0.5
    previews = [p for p in answer.parts if p.kind == "preview"]
    assert len({p.body for p in previews}) == len(previews)  # each frame a different picture
    for p in previews:
        img = Image.open(io.BytesIO(p.body))
        assert img.format == "JPEG" and max(img.size) <= 512
        assert abs(img.size[0] / img.size[1] - 1.0) < 0.02  # the link's aspect (512 x 512 by default)
    final = answer.parts[-1]
    plain = live_api.get("/prompt/a%20red%20fox?steps=10")
    assert plain.headers["X-LinkPix-Cache"] == "hit"
    assert final.headers["content-type"] == plain.headers["Content-Type"] == "image/png"
    assert final.body == plain.content  # byte-identical to what the plain link serves
    assert slow_sim.prompts_received == 1
    deadline = time.monotonic() + 5
    while live_api.services.live.writer.open_slots() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert live_api.services.live.writer.open_slots() == 0  # the viewer's slot is free again


def test_a_cached_link_answers_the_plain_image(live_api):
    first = live_api.get("/prompt/cached%20one")
    again = get_live(live_api.url + "/prompt/cached%20one?live=1")
    assert again.headers["content-type"] == "image/png" and again.headers["x-linkpix-cache"] == "hit"
    assert again.raw_body == first.content
    assert "x-linkpix-ignored" not in again.headers  # live steers the answer: not an unknown parameter
    odd = get_live(live_api.url + "/prompt/new%20one?live=1&bogus=2")
    assert odd.headers["content-type"].startswith("multipart/") and odd.headers["x-linkpix-ignored"] == "bogus"


def test_four_live_and_four_plain_viewers_share_one_run(live_api, slow_sim):
    url = "/prompt/shared%20run?steps=12"
    lives: list = [None] * 4
    plains: list = [None] * 4

    def live(i: int) -> None:
        lives[i] = get_live(live_api.url + url + "&live=1")

    def plain(i: int) -> None:
        plains[i] = requests.get(live_api.url + url, timeout=60)

    threads = [threading.Thread(target=live, args=(i,)) for i in range(4)]
    threads += [threading.Thread(target=plain, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert slow_sim.prompts_received == 1
    images = {p.content for p in plains} | {a.parts[-1].body for a in lives}
    assert len(images) == 1
    assert all(a.parts[-1].kind == "final" for a in lives)


def test_a_viewer_who_leaves_stops_nothing(live_api, slow_sim):
    url = "/prompt/left%20early?steps=15"
    gone = get_live(live_api.url + url + "&live=1", stop_after=1)  # reads the card, then hangs up
    assert gone.parts[0].kind == "card"
    plain = live_api.get(url)
    assert plain.status_code == 200 and plain.headers["Content-Type"] == "image/png"
    assert slow_sim.prompts_received == 1 and slow_sim.prompts_executed == 1


def test_an_error_ends_the_stream_with_the_error_picture(live_api, slow_sim):
    slow_sim.faults.fail_class = "KSampler"
    answer = get_live(live_api.url + "/prompt/will%20fail?live=1&width=640&height=384")
    last = answer.parts[-1]
    assert last.kind == "error" and last.headers["content-type"] == "image/png"
    assert Image.open(io.BytesIO(last.body)).size == (640, 384)
    assert answer.raw_body.endswith(b"--\r\n")


def test_cards_move_when_comfyui_sends_no_previews(project, tmp_path):
    sim = SimulatorServer(host="127.0.0.1", port=0, root=tmp_path / "quiet", step_delay=0.3, preview_method="none")
    sim.start()
    api = FrontServer(project, sim.url, live_fps=10)
    try:
        answer = get_live(api.url + "/prompt/no%20previews?live=1&steps=4&width=768&height=512")
    finally:
        api.close()
        sim.stop()
    cards = [p for p in answer.parts if p.kind == "card"]
    statuses = [p.headers["x-linkpix-status"] for p in cards]
    assert "drawing, step 2 of 4" in statuses and "drawing, step 3 of 4" in statuses
    assert Image.open(io.BytesIO(cards[0].body)).size == (512, 341)  # the link's aspect, 512 px as previews are
    assert answer.parts[-1].kind == "final"


@pytest.mark.slow
def test_a_queued_run_says_its_place(live_api, slow_sim):
    slow_sim.faults.step_delay = 0.2
    blocker = threading.Thread(target=live_api.get, args=("/prompt/first%20in%20line?steps=6",))
    blocker.start()
    deadline = time.monotonic() + 10
    while slow_sim.prompts_received < 1 and time.monotonic() < deadline:
        time.sleep(0.02)
    answer = get_live(live_api.url + "/prompt/second%20in%20line?live=1&steps=2")
    blocker.join(30)
    statuses = [p.headers.get("x-linkpix-status") for p in answer.parts if p.kind == "card"]
    assert "queued, 2nd" in statuses


def test_the_live_parameter_and_the_accept_header(live_api):
    bad = live_api.get("/prompt/x?live=maybe")
    assert bad.status_code == 400 and "live must be 1 or 0" in bad.json()["message"]
    off = get_live(live_api.url + "/prompt/opted%20out?live=0&steps=2")
    assert off.headers["content-type"] == "image/png"
    asked = get_live(live_api.url + "/prompt/by%20accept?steps=2", accept="multipart/x-mixed-replace, image/*")
    assert asked.headers["content-type"].startswith("multipart/x-mixed-replace")
    img_tag = get_live(live_api.url + "/prompt/img%20tag?steps=2", accept="image/avif,image/webp,image/*,*/*;q=0.8")
    assert img_tag.headers["content-type"] == "image/png"  # live_links: ask (the default)


def test_live_links_images_makes_it_the_default_for_img_tags(project, slow_sim):
    api = FrontServer(project, slow_sim.url, live_links="images")
    try:
        img_tag = get_live(api.url + "/prompt/img%20tag?steps=2", accept="image/avif,image/webp,image/*,*/*;q=0.8")
        curl = get_live(api.url + "/prompt/curl%20it?steps=2", accept="*/*")
    finally:
        api.close()
    assert img_tag.headers["content-type"].startswith("multipart/x-mixed-replace")
    assert curl.headers["content-type"] == "image/png"


@pytest.mark.slow
def test_live_viewers_do_not_hold_server_threads(project, slow_sim):
    """With 10 worker threads, 16 open live streams leave hits as fast as ever."""
    api = FrontServer(project, slow_sim.url, threads=10, max_pending=2)
    try:
        api.get("/prompt/a%20hit")
        slow_sim.faults.step_delay = 0.3
        viewers = [threading.Thread(target=get_live, args=(api.url + f"/prompt/open%20{i % 2}?live=1&steps=6",))
                   for i in range(16)]
        for v in viewers:
            v.start()
        time.sleep(0.5)
        assert api.services.live.writer.open_slots() == 16
        started = time.monotonic()
        for _ in range(10):
            assert api.get("/prompt/a%20hit", timeout=5).status_code == 200
        elapsed = time.monotonic() - started
        for v in viewers:
            v.join(60)
    finally:
        api.close()
    assert elapsed < 2.0


@pytest.mark.slow
def test_slots_per_user_bound_live_viewers(project, slow_sim):
    api = FrontServer(project, slow_sim.url, live_max_per_user=1)
    try:
        first: list = []
        viewer = threading.Thread(target=lambda: first.append(get_live(api.url + "/prompt/slot?live=1&steps=8")))
        viewer.start()
        time.sleep(0.3)
        second = get_live(api.url + "/prompt/slot?live=1&steps=8")
        viewer.join(30)
    finally:
        api.close()
    assert first[0].headers["content-type"].startswith("multipart/x-mixed-replace")
    assert second.headers["content-type"] == "image/png"  # over the bound: the plain answer
    assert second.raw_body == first[0].parts[-1].body


def test_previews_are_asked_per_prompt(project, tmp_path):
    """extra_data.preview_method goes with every prompt: a newer ComfyUI started without previews sends them for
    it; 0.3.64 keeps its own setting (the cards still move there)."""
    sim = SimulatorServer(host="127.0.0.1", port=0, root=tmp_path / "new", step_delay=0.05, preview_method="none",
                          profile="current")
    sim.start()
    api = FrontServer(project, sim.url)
    try:
        answer = get_live(api.url + "/prompt/asked%20for?live=1&steps=6")
        history = requests.get(sim.url + "/history", timeout=10).json()
    finally:
        api.close()
        sim.stop()
    assert any(p.kind == "preview" for p in answer.parts)
    (entry,) = history.values()
    assert entry["prompt"][3]["preview_method"] == "auto"


def test_each_user_watches_from_their_own_cache(live_api, slow_sim):
    """alice's cached picture is hers: bob's live link for the same text streams a run of his own (his cache),
    ending on the same bytes (same seed); alice's live link answers her cached image at once."""
    link = "/prompt/whose%20picture?steps=6"
    alice = live_api.get(link + "&user=alice")
    assert alice.headers["X-LinkPix-Cache"] == "miss"
    mine = get_live(live_api.url + link + "&user=alice&live=1")
    assert mine.headers["content-type"] == "image/png" and mine.headers["x-linkpix-cache"] == "hit"
    bobs = get_live(live_api.url + link + "&user=bob&live=1")
    assert bobs.headers["content-type"].startswith("multipart/x-mixed-replace")
    assert bobs.parts[-1].body == alice.content
    assert "/images/bob/" in live_api.get(link + "&user=bob&format=json").json()["url"]


@pytest.mark.slow
def test_without_connection_hand_over_the_stream_is_a_streamed_body(project, slow_sim):
    """Under a server that cannot hand connections over (here waitress without LinkPix's channel), the same
    parts come as an ordinary streamed body."""
    api = ApiServer(project, slow_sim.url)
    try:
        answer = get_live(api.url + "/prompt/streamed%20body?live=1&steps=6")
        plain = api.get("/prompt/streamed%20body?steps=6")
        deadline = time.monotonic() + 5
        while api.services.live.writer.open_slots() and time.monotonic() < deadline:
            time.sleep(0.02)
        slots = api.services.live.writer.open_slots()
    finally:
        api.close()
    assert answer.headers["content-type"].startswith("multipart/x-mixed-replace")
    assert [p.kind for p in answer.parts][0] == "card" and answer.parts[-1].kind == "final"
    assert any(p.kind == "preview" for p in answer.parts)
    assert answer.parts[-1].body == plain.content
    assert slots == 0  # released when the server closed the body


@pytest.mark.slow
def test_heavy_frames_reach_viewers_lighter_and_at_live_fps(live_api, slow_sim):
    """Previews as heavy as a real model's (50-75 KB) are re-encoded for the viewers (only the frames they are
    sent); with steps faster than `live_fps` a viewer gets about `live_fps` frames a second, and the finished
    image as soon as the run ends (a viewer resting for the rate limit still wakes for the end)."""
    slow_sim.faults.step_delay, slow_sim.faults.noisy_previews = 0.03, True
    answer = get_live(live_api.url + "/prompt/a%20noisy%20fox?live=1&steps=60")
    previews = [p for p in answer.parts if p.kind == "preview"]
    assert answer.parts[-1].kind == "final"
    assert all(len(p.body) <= 48 * 1024 for p in previews), [len(p.body) for p in previews]
    assert any(len(p.body) > 30 * 1024 for p in previews)  # noisy, re-encoded, not replaced by something tiny
    for p in previews:
        assert Image.open(io.BytesIO(p.body)).format == "JPEG"
    steps = [int(p.headers["x-linkpix-step"].split("/")[0]) for p in previews]
    assert steps == sorted(steps) and len(set(steps)) == len(steps)  # the newest frame each time, never twice
    span = previews[-1].arrived - previews[0].arrived
    assert len(previews) >= 3 and (len(previews) - 1) / span <= 4 * 1.25  # live_fps 4, with some slack
    assert answer.parts[-1].arrived - previews[-1].arrived < 2.0
    # What ComfyUI (the simulator) sent was heavier: a job's frame URL serves frames as they came.
    job = requests.post(live_api.url + "/generate", json={"prompt": "a noisy job", "steps": 60}, timeout=30)
    assert job.status_code == 202, job.text
    url = None
    with requests.get(f"{live_api.url}/jobs/{job.json()['job_id']}/events", stream=True, timeout=60) as events:
        for line in events.iter_lines(decode_unicode=True):
            if '"url": "/jobs/' in line:
                url = line.split('"url": "', 1)[1].split('"', 1)[0]
                break
    assert url is not None
    assert len(live_api.get(url).content) > 48 * 1024


def test_a_card_just_before_does_not_hold_the_first_frame_back(live_api, slow_sim):
    """The "drawing" card goes out a moment after the "queued" one, so it waits for the rate limit (`live_fps`);
    the first frame, 0.1 s later, must go out as it comes, not when that wait ends (then it would be step 2's
    or 3's frame, the newest by then)."""
    slow_sim.faults.step_delay = 0.1
    firsts = []
    for i in range(3):
        answer = get_live(live_api.url + f"/prompt/first%20frame%20{i}?live=1&steps=6")
        first = next(p for p in answer.parts if p.kind == "preview")
        firsts.append((first.headers["x-linkpix-step"], round(first.arrived - answer.started, 3)))
    assert [step for step, _ in firsts].count("1/6") >= 2, firsts
