"""Frame decoding against real ComfyUI 0.3.64 captures: text messages, binary previews, bad frames."""

from __future__ import annotations

import json
import struct

import pytest
from conftest import CAPTURES

from linkpix.comfy.events import PROMPT_EVENTS, Event, decode_binary_frame, parse_text_frame


def test_type4_preview_carries_its_prompt_id_and_a_jpeg():
    frame = (CAPTURES / "sample_preview_frame_type4_with_metadata.bin").read_bytes()
    event = decode_binary_frame(frame, current_prompt="someone-else")
    assert event is not None and event.type == "preview"
    assert event.prompt_id == "17335485-c504-4732-a653-9c1ec4ae84c3"
    assert event.data["node_id"] == "3"
    assert event.image_mime == "image/jpeg"
    assert event.image is not None and event.image.startswith(b"\xff\xd8\xff")
    assert len(event.image) == len(frame) - 8 - 166


def test_type1_preview_is_attributed_to_the_executing_prompt():
    frame = (CAPTURES / "sample_preview_frame_type1_legacy.bin").read_bytes()
    event = decode_binary_frame(frame, current_prompt="p-1")
    assert event == Event("preview", "p-1", {"format": 1, "legacy": True}, frame[8:], "image/jpeg")
    assert event.image is not None and event.image.startswith(b"\xff\xd8\xff")


def test_type3_text_frame():
    frame = struct.pack(">II", 3, 2) + b"12" + "halfway ✓".encode()
    event = decode_binary_frame(frame, current_prompt="p-2")
    assert event == Event("progress_text", "p-2", {"node": "12", "text": "halfway ✓"})


@pytest.mark.parametrize("frame", [
    b"",
    b"\x00\x00",
    struct.pack(">I", 1),  # preview without format
    struct.pack(">II", 4, 500) + b"{}",  # metadata length beyond the frame
    struct.pack(">II", 4, 3) + b"{x}" + b"img",  # metadata not JSON
    struct.pack(">II", 4, 2) + b"[]" + b"img",  # metadata not an object
    struct.pack(">II", 4, 2) + b"\xff\xfe",  # metadata not UTF-8
    struct.pack(">II", 3, 9) + b"1",  # text node id length beyond the frame
    struct.pack(">I", 2) + b"internal",  # type 2 is never on the wire
    struct.pack(">I", 99) + b"future",
])
def test_malformed_or_unknown_binary_frames_are_dropped_not_raised(frame):
    assert decode_binary_frame(frame, current_prompt="p") is None


def test_legacy_preview_with_unknown_format_sniffs_png():
    png = b"\x89PNG\r\n\x1a\n" + b"rest"
    event = decode_binary_frame(struct.pack(">II", 1, 7) + png)
    assert event is not None and event.image_mime == "image/png" and event.prompt_id is None


@pytest.mark.parametrize("name", sorted(p.name for p in CAPTURES.glob("ws_sequence_*.jsonl")))
def test_every_captured_text_message_parses(name):
    lines = (CAPTURES / name).read_text().splitlines()
    events = [parse_text_frame(line) for line in lines if '"_binary_frame"' not in line]
    assert events and all(e is not None for e in events)
    prompt_events = [e for e in events if e.type in PROMPT_EVENTS]
    assert prompt_events and all(e.prompt_id for e in prompt_events)
    completions = [e for e in events if e.is_completion]
    assert completions, "every capture ends a prompt with executing {node: null}"
    # The terminator is the last message of its prompt: nothing for that prompt follows it.
    for done in completions:
        after = events[events.index(done) + 1:]
        assert all(e.prompt_id != done.prompt_id for e in after)


def test_cached_capture_has_no_executing_for_nodes():
    lines = (CAPTURES / "ws_sequence_cached.jsonl").read_text().splitlines()
    events = [parse_text_frame(line) for line in lines]
    assert [e.data.get("node") for e in events if e.type == "executing"] == [None]
    assert [e.type for e in events if e.type == "executed"] == ["executed"]


@pytest.mark.parametrize("text", [
    "not json", "[]", '{"data": {}}', '{"type": 5}', b"\xff\xfe",
])
def test_bad_text_frames_are_dropped(text):
    assert parse_text_frame(text) is None


def test_text_frame_without_data_object_still_has_a_type():
    assert parse_text_frame(json.dumps({"type": "crystools.monitor", "data": [1, 2]})) == \
        Event("crystools.monitor", None, {})


def test_executing_without_prompt_id_is_not_a_completion():
    # The reconnect hello `{"node": "2"}` and old servers' `{"node": null}` carry no prompt_id.
    event = parse_text_frame('{"type": "executing", "data": {"node": null}}')
    assert event is not None and not event.is_completion
