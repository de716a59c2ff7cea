"""Helpers for the fronts' tests: LinkPix served as `app.py` serves it (websocket upgrades on)."""

from __future__ import annotations

import base64
import io
import json
import time
from pathlib import Path
from typing import Any

from PIL import Image
from support import ApiServer

from linkpix.web.fronts import upgrade

DATA = Path(__file__).resolve().parent / "data"


class FrontServer(ApiServer):
    """ApiServer with the channel class `linkpix.run.api.serve` uses, so /ws can upgrade."""

    def __init__(self, project: Path, comfyui_url: str | None, **overrides: Any) -> None:
        super().__init__(project, comfyui_url, **overrides)
        upgrade.enable(self.server)


def png_bytes(width: int = 64, height: int = 48, color: tuple[int, int, int] = (200, 30, 30)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), color).save(out, "PNG")
    return out.getvalue()


def image_of(b64: str) -> Image.Image:
    return Image.open(io.BytesIO(base64.b64decode(b64)))


def sillytavern_workflow(prompt: str, negative: str, seed: int, settings: dict[str, Any],
                         custom: dict[str, Any] | None = None, name: str = "sillytavern_default.json") -> str:
    """SillyTavern 1.12.6's generateComfyImage: the workflow text with its placeholders replaced by
    string substitution of JSON values (then the user's own `comfy_placeholders`, `custom`), wrapped in
    `{"prompt": ...}` as the text it POSTs."""
    workflow = (DATA / name).read_text()
    workflow = workflow.replace('"%prompt%"', json.dumps(prompt))
    workflow = workflow.replace('"%negative_prompt%"', json.dumps(negative))
    workflow = workflow.replace('"%seed%"', json.dumps(seed))
    for ph in ("model", "vae", "sampler", "scheduler", "steps", "scale", "width", "height", "clip_skip"):
        if ph in settings:
            workflow = workflow.replace(f'"%{ph}%"', json.dumps(settings[ph]))
    for find, replace in (custom or {}).items():
        workflow = workflow.replace(f'"%{find}%"', json.dumps(replace))
    return f"""{{
                "prompt": {workflow}
            }}"""


def wait_for(condition: Any, timeout: float = 10.0, interval: float = 0.02) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError("condition not met in time")


def last_logged(server: ApiServer, path: str, count: int = 1) -> dict[str, Any]:
    """The newest request-log entry for `path`, once `count` of them exist (the log line is written
    after the response has been sent, so a test must wait for it)."""
    def entries() -> list[dict[str, Any]]:
        return [r for r in list(server.services.recent_requests) if r["path"] == path]
    return wait_for(lambda: len(entries()) >= count and entries()[-1])


def video(graph: dict[str, Any]) -> dict[str, Any]:
    """The graph with its SaveImage replaced by CreateVideo -> SaveVideo (0.3.64 lists the MP4 under `images`)."""
    save = next(k for k, v in graph.items() if v["class_type"] == "SaveImage")
    graph["90"] = {"class_type": "CreateVideo", "inputs": {"images": graph[save]["inputs"]["images"], "fps": 8}}
    graph[save] = {"class_type": "SaveVideo", "inputs": {"video": ["90", 0], "filename_prefix": "video/lp",
                                                          "format": "auto", "codec": "auto"}}
    return graph


def add_video_workflow(project: Path) -> None:
    """workflows/video.json: the demo workflow saving a video instead of its picture."""
    demo = json.loads((project / "workflows" / "demo.json").read_text())
    (project / "workflows" / "video.json").write_text(json.dumps(video(demo)))
