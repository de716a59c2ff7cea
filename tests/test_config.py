"""The configuration object: sources, validation messages, reload, and the settings table staying in step."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from linkpix.config import ConfigHolder, Settings, load_config
from linkpix.errors import ConfigError

SETTINGS_TABLE = Path(__file__).resolve().parent.parent / "docs" / "configuration.md"


def write(path: Path, values: dict) -> Path:
    path.write_text(json.dumps(values))
    return path


def test_the_settings_table_documents_every_key():
    text = SETTINGS_TABLE.read_text()
    missing = [key for key in Settings.model_fields if f"| `{key}` |" not in text]
    assert missing == []


def test_file_values_and_defaults(tmp_path):
    cfg = load_config(write(tmp_path / "config.json", {"api_port": 4100}), use_env=False)
    assert cfg.settings.api_port == 4100 and cfg.settings.image_format == "png"
    assert cfg.output_dir == tmp_path / "cache"


def test_environment_and_dotenv_override_the_file(tmp_path, monkeypatch):
    path = write(tmp_path / "config.json", {"api_port": 4100, "timeout": 10})
    (tmp_path / ".env").write_text("LINKPIX_TIMEOUT=42\n")
    monkeypatch.setenv("LINKPIX_API_PORT", "4200")
    cfg = load_config(path)
    assert cfg.settings.api_port == 4200 and cfg.settings.timeout == 42


@pytest.mark.parametrize("values, key", [
    ({"timeout": "soon"}, "timeout"),
    ({"image_format": "gif"}, "image_format"),
    ({"comfyui_url": "localhost:8188"}, "comfyui_url"),
    ({"no_such_key": 1}, "no_such_key"),
    ({"api_port": 70000}, "api_port"),
    ({"cpu_pin": True}, "cpu_pin"),  # JSON true is no CPU number (it would have read as CPU 1)
])
def test_bad_values_name_the_key(tmp_path, values, key):
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path / "config.json", values), use_env=False)
    assert f"'{key}'" in err.value.message


@pytest.mark.parametrize("cpu, bound", [(-1, "greater than or equal to 0"), (5000, "less than or equal to 4095")])
def test_a_cpu_number_out_of_range_is_refused_when_read(tmp_path, cpu, bound):
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path / "config.json", {"cpu_pin": cpu}), use_env=False)
    assert "'cpu_pin" in err.value.message and bound in err.value.message


def test_broken_json_names_line(tmp_path):
    path = tmp_path / "config.json"
    path.write_text('{\n  "timeout": 5,\n  oops\n}')
    with pytest.raises(ConfigError) as err:
        load_config(path, use_env=False)
    assert "line 3" in err.value.message


def test_holder_reloads_on_change_and_keeps_last_good(tmp_path):
    path = write(tmp_path / "config.json", {"timeout": 5})
    holder = ConfigHolder(path, use_env=False)
    assert holder.get().settings.timeout == 5
    write(path, {"timeout": 7})
    os.utime(path, ns=(time.time_ns(), time.time_ns() + 1_000_000))
    assert holder.get().settings.timeout == 7
    path.write_text("{broken")
    os.utime(path, ns=(time.time_ns(), time.time_ns() + 2_000_000))
    assert holder.get().settings.timeout == 7  # the last good configuration keeps serving
