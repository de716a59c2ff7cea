"""Helpers for the simulator tests: JSON shape comparison, capture loading, a websocket recorder.

No tests live here; the test_simulator_* modules import it.
"""

from __future__ import annotations

import io
import json
import re
import struct
import time
import uuid
from typing import Any

import requests
import websocket
from PIL import Image
from support import CAPTURES

UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "str"
    if isinstance(value, list):
        return "list"
    if isinstance(value, dict):
        return "dict"
    return type(value).__name__


def _norm_keys(d: dict[str, Any]) -> list[tuple[str, Any]]:
    """Keys that are UUIDs (prompt ids) are compared by position, everything else by name."""
    out, n = [], 0
    for k, v in d.items():
        if UUID_RE.match(k):
            out.append((f"<uuid#{n}>", v))
            n += 1
        else:
            out.append((k, v))
    return out


def shape_diff(expected: Any, actual: Any, path: str = "$", loose_numbers: bool = False) -> list[str]:
    """Differences in JSON shape: key sets and value types, recursively (values themselves may differ).

    Lists of equal length are compared element by element; otherwise every actual element must have the
    shape of the expected first element (an empty expected list accepts anything)."""
    ek, ak = kind(expected), kind(actual)
    if loose_numbers and {ek, ak} <= {"int", "float"}:
        return []
    if ek != ak:
        return [f"{path}: expected {ek}, got {ak} ({json.dumps(actual)[:80]})"]
    if ek == "dict":
        e, a = dict(_norm_keys(expected)), dict(_norm_keys(actual))
        diffs = []
        if set(e) != set(a):
            diffs.append(f"{path}: keys differ: missing {sorted(set(e) - set(a))}, extra {sorted(set(a) - set(e))}")
        for k in e.keys() & a.keys():
            diffs += shape_diff(e[k], a[k], f"{path}.{k}", loose_numbers)
        return diffs
    if ek == "list":
        if len(expected) == len(actual):
            return [d for i, (x, y) in enumerate(zip(expected, actual, strict=True))
                    for d in shape_diff(x, y, f"{path}[{i}]", loose_numbers)]
        if not expected:
            return []
        return [d for i, y in enumerate(actual) for d in shape_diff(expected[0], y, f"{path}[{i}]", loose_numbers)]
    return []


def assert_same_shape(expected: Any, actual: Any, loose_numbers: bool = False) -> None:
    diffs = shape_diff(expected, actual, loose_numbers=loose_numbers)
    assert not diffs, "shape differs from capture:\n" + "\n".join(diffs[:20])


def load(name: str) -> Any:
    return json.loads((CAPTURES / name).read_text())


def workflow(name: str) -> dict[str, Any]:
    """A captured API workflow, with the capture server's model name swapped for a simulator one."""
    wf = load(name)
    for node in wf.values():
        if node["inputs"].get("ckpt_name") == "tiny-random-sd15.safetensors":
            node["inputs"]["ckpt_name"] = "v1-5-pruned-emaonly.safetensors"
    return wf


def read_ws_capture(name: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (CAPTURES / name).read_text().splitlines() if line.strip()]


def png(width: int = 64, height: int = 48, colour: tuple[int, int, int] = (10, 200, 30)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (width, height), colour).save(buf, format="PNG")
    return buf.getvalue()


def upload(url: str, name: str, data: bytes, **fields: str) -> requests.Response:
    return requests.post(url + "/upload/image", files={"image": (name, data, "image/png")}, data=fields,
                         timeout=10)


def decode_binary(data: bytes) -> dict[str, Any]:
    """The same header fields the capture files record for a binary frame."""
    out: dict[str, Any] = {"_binary_frame": True, "length": len(data), "first8_hex": data[:8].hex(),
                           "event_type_be_u32": struct.unpack(">I", data[:4])[0]}
    if out["event_type_be_u32"] == 1:
        out["image_format_be_u32"] = struct.unpack(">I", data[4:8])[0]
        out["image_magic_hex"] = data[8:12].hex()
    elif out["event_type_be_u32"] == 4:
        n = struct.unpack(">I", data[4:8])[0]
        out["metadata_len"] = n
        out["metadata"] = json.loads(data[8:8 + n])
        out["image_magic_hex"] = data[8 + n:12 + n].hex()
    return out


class Recorder:
    """A websocket client that records every frame like the capture files do."""

    def __init__(self, url: str, client_id: str | None = None, feature_flags: bool = False) -> None:
        self.client_id = client_id or str(uuid.uuid4())
        ws_url = url.replace("http://", "ws://") + f"/ws?clientId={self.client_id}"
        self.ws = websocket.create_connection(ws_url, timeout=15)
        self.frames: list[dict[str, Any]] = []
        self._read_one()  # status hello
        if feature_flags:
            self.ws.send(json.dumps({"type": "feature_flags", "data": {"supports_preview_metadata": True}}))
            self._read_one()

    def _read_one(self) -> dict[str, Any]:
        opcode, data = self.ws.recv_data()
        if opcode == websocket.ABNF.OPCODE_BINARY:
            frame = decode_binary(data)
        elif opcode == websocket.ABNF.OPCODE_TEXT:
            frame = json.loads(data.decode("utf-8"))
        else:
            frame = {"_control": opcode}
        self.frames.append(frame)
        return frame

    def until_done(self, prompt_id: str, timeout: float = 20.0) -> list[dict[str, Any]]:
        """Read until `executing {node: null, prompt_id}`; return all frames so far."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            f = self._read_one()
            if f.get("type") == "executing" and f["data"].get("node") is None \
                    and f["data"].get("prompt_id") == prompt_id:
                return self.frames
        raise AssertionError(f"prompt {prompt_id} did not finish; got {[label(f) for f in self.frames]}")

    def until(self, predicate: Any, timeout: float = 20.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            f = self._read_one()
            if predicate(f):
                return f
        raise AssertionError("expected frame never arrived")

    def close(self) -> None:
        self.ws.close()


def label(frame: dict[str, Any]) -> str:
    if frame.get("_binary_frame"):
        return f"<binary {frame['event_type_be_u32']}>"
    return str(frame.get("type"))


def post_prompt(url: str, prompt: dict[str, Any], client_id: str | None = None, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"prompt": prompt, **extra}
    if client_id is not None:
        body["client_id"] = client_id
    r = requests.post(url + "/prompt", json=body, timeout=10)
    assert r.status_code == 200, r.text
    return r.json()


def wait_history(url: str, prompt_id: str, timeout: float = 20.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        h = requests.get(f"{url}/history/{prompt_id}", timeout=10).json()
        if h:
            return h
        time.sleep(0.02)
    raise AssertionError(f"no history for {prompt_id}")


def run(url: str, prompt: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """Submit and wait for the history entry (no websocket)."""
    pid = post_prompt(url, prompt, **extra)["prompt_id"]
    return wait_history(url, pid)[pid]
