"""ComfyClient against the ComfyUI simulator over real sockets: runs, failures, drops, restarts, threads;
each test against both simulator profiles (ComfyUI 0.3.64 and today's)."""

from __future__ import annotations

import io
import json
import socket
import threading
import time
from collections.abc import Iterator

import pytest
from conftest import CAPTURES

from linkpix.comfy import ComfyClient, Event
from linkpix.errors import (
    BackendUnavailable,
    BadRequest,
    ExecutionFailed,
    GenerationTimeout,
    Interrupted,
    WorkflowRejected,
)
from linkpix.simulator import SimulatorServer

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def small_graph(color: int = 0xFF8000, prefix: str = "t") -> dict:
    """The captured model-free workflow (EmptyImage -> ImageBlur -> ImageInvert -> SaveImage), 64x48."""
    graph = json.loads((CAPTURES / "workflow_emptyimage_api.json").read_text())
    graph["1"]["inputs"].update(width=64, height=48, color=color)
    graph["4"]["inputs"]["filename_prefix"] = prefix
    return graph


def txt2img_graph(seed: int = 1, steps: int = 3) -> dict:
    """The captured tiny txt2img workflow; the simulator spends `faults.step_delay` per sampler step."""
    graph = json.loads((CAPTURES / "workflow_txt2img_tiny_sd15_api.json").read_text())
    graph["4"]["inputs"]["ckpt_name"] = "v1-5-pruned-emaonly.safetensors"
    graph["3"]["inputs"].update(seed=seed, steps=steps)
    return graph


def png_bytes(color: tuple[int, int, int]) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), color).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture(params=["0.3.64", "current"])
def simulator(request: pytest.FixtureRequest, tmp_path) -> Iterator[SimulatorServer]:
    """Every test here runs against the ComfyUI of the captures and against today's (simulator profiles)."""
    sim = SimulatorServer(host="127.0.0.1", port=0, root=tmp_path / "comfyui", step_delay=0.0,
                          profile=request.param)
    sim.start()
    try:
        yield sim
    finally:
        sim.stop()


@pytest.fixture
def client(simulator) -> Iterator[ComfyClient]:
    comfy = ComfyClient(simulator.url, read_timeout=10.0)
    try:
        yield comfy
    finally:
        comfy.close()


def in_thread(target, *args, **kwargs) -> tuple[threading.Thread, dict]:
    """Run `target` in a thread; the dict gets "result" or "error"."""
    outcome: dict = {}

    def body():
        try:
            outcome["result"] = target(*args, **kwargs)
        except Exception as exc:  # handed back to the test
            outcome["error"] = exc

    thread = threading.Thread(target=body, daemon=True)
    thread.start()
    return thread, outcome


def sampling_started(events: list[Event]) -> threading.Event:
    """A flag set by `on_event` when the KSampler (node 3) starts: under `faults.hang` it then waits."""
    flag = threading.Event()

    def on_event(event: Event) -> None:
        events.append(event)
        if event.type == "executing" and event.data.get("node") == "3":
            flag.set()

    flag.on_event = on_event  # type: ignore[attr-defined]
    return flag


# --- success ------------------------------------------------------------------------------------

def test_run_returns_the_saved_png(client):
    events: list[Event] = []
    images = client.run(small_graph(), timeout=10, on_event=events.append)
    assert len(images) == 1
    image = images[0]
    assert image.data.startswith(PNG_MAGIC)
    assert (image.type, image.node_id, image.content_type) == ("output", "4", "image/png")
    assert image.filename.startswith("t_") and image.filename.endswith(".png")
    assert {e.prompt_id for e in events} == {image.prompt_id}
    assert events[-1].type == "executing" and events[-1].data["node"] is None
    assert "execution_success" in [e.type for e in events]


def test_cached_rerun_returns_the_same_image_without_executing_nodes(client):
    first = client.run(small_graph(), timeout=10)
    events: list[Event] = []
    second = client.run(small_graph(), timeout=10, on_event=events.append)
    assert [(i.filename, i.data) for i in second] == [(i.filename, i.data) for i in first]
    assert second[0].prompt_id != first[0].prompt_id
    assert [e.data.get("node") for e in events if e.type == "executing"] == [None]
    cached = [e for e in events if e.type == "execution_cached"]
    assert cached and set(cached[0].data["nodes"]) == {"1", "2", "3", "4"}


def test_preview_only_graph_returns_temp_images(client):
    graph = small_graph()
    graph["4"] = {"class_type": "PreviewImage", "inputs": {"images": ["3", 0]}}
    images = client.run(graph, timeout=10)
    assert len(images) == 1 and images[0].type == "temp" and images[0].data.startswith(PNG_MAGIC)


# --- refused and failed runs ----------------------------------------------------------------------

def test_validation_error_is_workflow_rejected_with_node_errors(client):
    graph = small_graph()
    graph["1"]["inputs"]["width"] = 0
    with pytest.raises(WorkflowRejected) as caught:
        client.run(graph, timeout=10)
    error = caught.value
    assert error.message.startswith("ComfyUI refused the workflow: node 1 (EmptyImage): Value 0 smaller")
    assert error.node_errors["1"]["class_type"] == "EmptyImage"
    assert error.node_errors["1"]["errors"][0]["type"] == "value_smaller_than_min"
    assert client.control.queue() == {"running": [], "pending": []}


def test_unknown_sampler_is_rejected_with_the_list_length(client):
    graph = txt2img_graph()
    graph["3"]["inputs"]["sampler_name"] = "foo"
    with pytest.raises(WorkflowRejected, match=r"node 3 \(KSampler\): Value not in list: sampler_name: "
                                               r"'foo' not in \(list of length \d+\)"):
        client.submit(graph)


def test_a_graph_that_is_not_a_dict_is_rejected_before_sending(client):
    with pytest.raises(WorkflowRejected, match="JSON object"):
        client.submit(["not", "a", "graph"])  # type: ignore[arg-type]


def test_runtime_error_is_execution_failed(simulator, client):
    simulator.faults.fail_class = "ImageInvert"
    with pytest.raises(ExecutionFailed) as caught:
        client.run(small_graph(), timeout=10)
    error = caught.value
    assert (error.node_id, error.node_type) == ("3", "ImageInvert")
    assert "node 3 (ImageInvert)" in error.message and not error.message.endswith("\n")


def test_interrupt_gives_interrupted(simulator, client):
    simulator.faults.hang = True
    events: list[Event] = []
    started = sampling_started(events)
    thread, outcome = in_thread(client.run, txt2img_graph(), 20, started.on_event)
    assert started.wait(10)
    client.control.interrupt(events[-1].prompt_id)
    thread.join(10)
    error = outcome.get("error")
    assert isinstance(error, Interrupted), outcome
    assert "at node 3 (KSampler)" in error.message


def test_timeout_stops_the_running_prompt(simulator, client):
    simulator.faults.hang = True
    started = time.monotonic()
    with pytest.raises(GenerationTimeout, match="within 0.5 s; it was interrupted") as caught:
        client.run(txt2img_graph(), timeout=0.5)
    assert time.monotonic() - started < 5
    prompt_id = caught.value.details["prompt_id"]
    assert client.control.queue_position(prompt_id) is None
    queue = client.control.queue()
    assert prompt_id not in queue["running"] + queue["pending"]


def test_timeout_removes_a_pending_prompt_from_the_queue(simulator, client):
    simulator.faults.hang = True
    blocker = client.submit(txt2img_graph())
    with pytest.raises(GenerationTimeout, match="removed from the queue"):
        client.run(small_graph(color=2), timeout=0.3)
    queue = client.control.queue()
    assert queue == {"running": [blocker], "pending": []}
    client.control.interrupt(blocker)
    with pytest.raises(Interrupted):
        client.wait(blocker, timeout=5)


# --- connection trouble -------------------------------------------------------------------------

def test_socket_dropped_mid_run_still_finds_the_completion(simulator, client):
    simulator.faults.step_delay = 0.05
    events: list[Event] = []
    started = sampling_started(events)
    thread, outcome = in_thread(client.run, txt2img_graph(steps=20), 20, started.on_event)
    assert started.wait(10)
    simulator.faults.drop_websockets()
    thread.join(20)
    images = outcome.get("result")
    assert images and images[0].data.startswith(PNG_MAGIC), outcome
    # The socket came back: the next run gets its events again.
    simulator.faults.step_delay = 0.0
    later: list[Event] = []
    client.run(small_graph(color=3), timeout=10, on_event=later.append)
    assert any(e.type == "execution_start" for e in later)


def test_comfyui_restart_mid_run_fails_clearly_and_quickly(simulator, client):
    simulator.faults.hang = True
    events: list[Event] = []
    started = sampling_started(events)
    thread, outcome = in_thread(client.run, txt2img_graph(), 30, started.on_event)
    assert started.wait(10)
    prompt_id = events[-1].prompt_id
    restarted = time.monotonic()
    simulator.restart()
    thread.join(15)
    error = outcome.get("error")
    assert isinstance(error, BackendUnavailable), outcome
    assert error.message == f"ComfyUI at {client.base_url} lost prompt {prompt_id} (did it restart?)"
    assert time.monotonic() - restarted < 5


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_connection_refused_is_backend_unavailable_within_two_seconds():
    url = f"http://127.0.0.1:{free_port()}"
    with ComfyClient(url) as comfy:
        started = time.monotonic()
        with pytest.raises(BackendUnavailable, match=f"ComfyUI at {url} is not reachable"):
            comfy.run(small_graph(), timeout=30)
        assert time.monotonic() - started < 2
        assert comfy.ping() is False


def test_paused_backend_is_unavailable_then_recovers(simulator, client):
    assert client.ping()
    simulator.pause()
    try:
        started = time.monotonic()
        with pytest.raises(BackendUnavailable, match=simulator.url.rstrip("/")):
            client.run(small_graph(), timeout=30)
        assert time.monotonic() - started < 2
    finally:
        simulator.resume()
    assert client.run(small_graph(), timeout=10)[0].data.startswith(PNG_MAGIC)


# --- concurrency and progress ---------------------------------------------------------------------

def test_concurrent_runs_from_threads_share_one_client(client):
    results: dict[int, list] = {}
    events: dict[int, list[Event]] = {}
    errors: list[BaseException] = []

    def worker(n: int) -> None:
        events[n] = []
        try:
            results[n] = client.run(small_graph(color=n * 1000, prefix=f"c{n}"), 30, events[n].append)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(40)
    assert not errors
    assert len({images[0].prompt_id for images in results.values()}) == 8
    for n, images in results.items():
        assert len(images) == 1 and images[0].filename.startswith(f"c{n}_")
        assert {e.prompt_id for e in events[n]} == {images[0].prompt_id}


def test_progress_events_and_previews_reach_on_event(client):
    events: list[Event] = []
    images = client.run(txt2img_graph(), timeout=20, on_event=events.append)
    prompt_id = images[0].prompt_id
    progress = [e for e in events if e.type == "progress"]
    assert progress and progress[-1].data["value"] == progress[-1].data["max"] == 3
    previews = [e for e in events if e.type == "preview"]
    assert previews, "the simulator should send latent previews for a KSampler"
    assert all(p.prompt_id == prompt_id and p.image and p.image_mime for p in previews)
    assert client.server_features.get("supports_preview_metadata") is True


# --- files, queue and information ----------------------------------------------------------------

def test_upload_image_naming_and_use_in_loadimage(client):
    red, blue = png_bytes((255, 0, 0)), png_bytes((0, 0, 255))
    assert client.upload_image(red, "up.png") == "up.png"
    assert client.upload_image(red, "up.png") == "up.png"  # identical bytes: reused
    assert client.upload_image(blue, "up.png") == "up (1).png"  # different bytes: renamed
    assert client.upload_image(blue, "up.png", overwrite=True) == "up.png"
    name = client.upload_image(red, "in.png", subfolder="linkpix")
    assert name == "linkpix/in.png"
    graph = json.loads((CAPTURES / "workflow_loadimage_invert_api.json").read_text())
    loader = next(n for n in graph.values() if n["class_type"] == "LoadImage")
    loader["inputs"]["image"] = name
    assert client.run(graph, timeout=10)[0].data.startswith(PNG_MAGIC)
    for bad in ("../x.png", "", "a/b.png"):
        with pytest.raises(BadRequest):
            client.upload_image(red, bad)


def test_queue_order_and_positions(simulator, client):
    simulator.faults.hang = True
    first = client.submit(txt2img_graph())
    second = client.submit(small_graph(color=11))
    urgent = client.submit(small_graph(color=12), front=True)
    deadline = time.monotonic() + 5
    while client.control.queue()["running"] != [first] and time.monotonic() < deadline:
        time.sleep(0.02)
    assert client.control.queue() == {"running": [first], "pending": [urgent, second]}
    assert [client.control.queue_position(p) for p in (first, urgent, second)] == [0, 1, 2]
    client.control.delete_from_queue([second, urgent])
    client.control.interrupt()
    with pytest.raises(Interrupted):
        client.wait(first, timeout=10)
    assert client.control.queue_position(second) is None


def test_object_info_is_cached_and_feeds_the_choice_helpers(simulator):
    with ComfyClient(simulator.url, object_info_ttl=60) as comfy:
        info = comfy.object_info()
        assert comfy.object_info() is info
        assert comfy.object_info(refresh=True) is not info
        assert "v1-5-pruned-emaonly.safetensors" in comfy.checkpoints()
        assert "euler" in comfy.samplers() and "normal" in comfy.schedulers()
        assert isinstance(comfy.vaes(), list) and isinstance(comfy.loras(), list)
        assert isinstance(comfy.unets(), list)
        assert "system" in comfy.system_stats()
    with ComfyClient(simulator.url, object_info_ttl=0) as comfy:
        assert comfy.object_info() is not comfy.object_info()


def test_wait_for_a_prompt_submitted_elsewhere(simulator, client):
    prompt_id = client.submit(small_graph(color=77))
    with ComfyClient(simulator.url) as other:
        entry = other.wait(prompt_id, timeout=10)
        images = other.images(prompt_id, entry)
    assert images and images[0].prompt_id == prompt_id


def test_close_stops_the_reader_thread(simulator):
    comfy = ComfyClient(simulator.url)
    comfy.run(small_graph(), timeout=10)
    assert comfy.queue_remaining == 0  # from the `status` message sent before `executing null`
    name = f"comfy-ws {comfy.base_url}"
    assert any(t.name == name for t in threading.enumerate())
    comfy.close()
    assert not any(t.name == name and t.is_alive() for t in threading.enumerate())


def test_partly_invalid_workflow_runs_the_valid_output_and_logs_the_rest(client, caplog):
    graph = small_graph()
    graph["5"] = {"class_type": "ImageScale", "inputs": {"image": ["1", 0], "upscale_method": "nope",
                                                          "width": 8, "height": 8, "crop": "disabled"}}
    graph["6"] = {"class_type": "SaveImage", "inputs": {"images": ["5", 0], "filename_prefix": "bad"}}
    with caplog.at_level("WARNING", logger="linkpix.comfy.client"):
        images = client.run(graph, timeout=10)
    assert [i.node_id for i in images] == ["4"]
    assert "node 5 (ImageScale): Value not in list: upscale_method" in caplog.text


def test_a_failing_on_event_callback_does_not_lose_the_run(client):
    def explode(event: Event) -> None:
        raise RuntimeError("callback bug")

    assert client.run(small_graph(), timeout=10, on_event=explode)[0].data.startswith(PNG_MAGIC)


def test_a_closed_client_refuses_clearly(simulator):
    comfy = ComfyClient(simulator.url)
    comfy.close()
    comfy.close()  # idempotent
    with pytest.raises(BackendUnavailable, match="is closed"):
        comfy.run(small_graph(), timeout=5)


@pytest.mark.parametrize("url", ["", "localhost:8188", "ftp://host/", "http://"])
def test_a_bad_backend_url_is_a_configuration_error(url):
    from linkpix.errors import ConfigError

    with pytest.raises(ConfigError, match="is not an http"):
        ComfyClient(url)
