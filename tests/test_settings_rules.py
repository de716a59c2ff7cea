"""The rules between settings and the values derived from several of them live on `Settings` (issue 19):
the API refuses to start with too few threads, and every event stream shares one number of slots."""

from __future__ import annotations

import pytest

from linkpix.config import load_config
from linkpix.errors import ConfigError
from linkpix.web import create_app


def test_too_few_threads_for_max_pending_is_refused_at_start_naming_both(tmp_path):
    settings = load_config(tmp_path / "config.json", {"threads": 12, "max_pending": 8}, use_env=False).settings
    with pytest.raises(ConfigError, match=r"'threads' \(12\) must exceed 'max_pending' \(8\) by at least 8"):
        settings.check_rules()
    with pytest.raises(ConfigError, match="'threads'"):
        create_app(tmp_path / "config.json", overrides={"threads": 12, "max_pending": 8}, use_env=False)


def test_stream_slots_leave_threads_for_generations_and_never_drop_below_one(tmp_path):
    def slots(**values: int) -> int:
        return load_config(tmp_path / "config.json", values, use_env=False).settings.stream_slots

    assert slots(threads=48, max_pending=8, events_max_streams=100) == 48 - 8 - 4
    assert slots(threads=48, max_pending=8, events_max_streams=5) == 5
    assert slots(threads=16, max_pending=8, events_max_streams=5) == 4
    assert slots(threads=12, max_pending=8, events_max_streams=5) == 1
