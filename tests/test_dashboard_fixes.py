"""Dashboard fixes without a browser: the Monitor calls a CPU device's memory RAM, and the Settings tab
knows which value is in force and where it comes from (default / config.json / .env / environment /
launcher), including the simulator's URL under `start_server.py --demo`."""

from __future__ import annotations

import argparse
import json

from support import CAPTURES

from linkpix.config import LAUNCHER_ENV, load_config
from linkpix.dashboard.configedit import settings_in_force
from linkpix.dashboard.monitor import GPU_COLUMNS, gpu_rows
from linkpix.run.launcher import plan


def test_a_cpu_device_shows_ram_and_a_gpu_shows_vram():
    stats = json.loads((CAPTURES / "system_stats.json").read_text())  # a real ComfyUI on --cpu
    assert stats["devices"][0]["type"] == "cpu"
    row = dict(zip(GPU_COLUMNS, gpu_rows(stats)[0], strict=True))
    assert row["memory"] == "RAM" and row["total"].endswith("GiB")
    gpu = {"devices": [{"name": "cuda:0 NVIDIA RTX 4090", "type": "cuda", "vram_total": 24 << 30,
                        "vram_free": 20 << 30}]}
    assert dict(zip(GPU_COLUMNS, gpu_rows(gpu)[0], strict=True))["memory"] == "VRAM"
    assert not any("VRAM" in column for column in GPU_COLUMNS)


def rows_by_key(rows: list[list[str]]) -> dict[str, tuple[str, str]]:
    return {key: (value, source) for key, value, source in rows}


def test_every_source_is_named(project):
    config = json.loads((project / "config.json").read_text())
    config.update(timeout=120, api_keys={"k": "alice"})
    settings = load_config(project / "config.json",
                           overrides={"timeout": 120, "image_format": "webp", "max_pixels": 1000,
                                      "api_keys": {"k": "alice"}, "dashboard_password": "pw"},
                           use_env=False).settings
    rows = rows_by_key(settings_in_force(settings, config,
                                         {"LINKPIX_IMAGE_FORMAT": "webp", LAUNCHER_ENV: "api_port=--api-port"},
                                         {"LINKPIX_MAX_PIXELS": "1000", "LINKPIX_DASHBOARD_PASSWORD": "pw"}))
    assert rows["timeout"] == ("120.0", "config.json")
    assert rows["image_format"] == ("webp", "environment (LINKPIX_IMAGE_FORMAT)")
    assert rows["max_pixels"] == ("1000", ".env (LINKPIX_MAX_PIXELS)")
    assert rows["api_port"][1] == "launcher (--api-port)"
    assert rows["cache_max_age_days"] == ("0.0", "default")
    assert rows["api_keys"] == ("(set)", "config.json") and rows["dashboard_password"][0] == "(set)"
    assert rows["signing_keys"] == ("(not set)", "default")  # secrets: set or not, never their value


def test_under_demo_the_simulator_url_is_in_force_and_said_to_come_from_the_launcher(project):
    children, urls = plan(argparse.Namespace(config=str(project / "config.json"), demo=True, api_port=None,
                                             web_port=4567, no_dashboard=False))
    env = next(c for c in children if c.name == "dashboard").env
    simulator_url = urls["comfyui-simulator"]
    # The dashboard child reads its settings with that environment on top of config.json.
    settings = load_config(project / "config.json", overrides={"comfyui_url": env["LINKPIX_COMFYUI_URL"],
                                                               "web_port": int(env["LINKPIX_WEB_PORT"])},
                           use_env=False).settings
    config = json.loads((project / "config.json").read_text())
    rows = rows_by_key(settings_in_force(settings, config, env, {}))
    assert rows["comfyui_url"][0] == simulator_url != config["comfyui_url"]
    assert rows["comfyui_url"][1].startswith("launcher (--demo")
    assert rows["web_port"] == ("4567", "launcher (--web-port)")
    assert rows["api_port"][1] in ("config.json", "default")  # not given on the command line
