"""ComfyUI's audio nodes EmptyAudio, LoadAudio and SaveAudio, for a simulator started with `audio=True`.

The captured ComfyUI 0.3.64 (tests/comfyui_captures, and the real server LinkPix is tried on) has none of
`comfy_extras/nodes_audio.py`: that module imports torchaudio, which its environment lacks, so ComfyUI
skipped it. A stock install has them; these are their `/object_info` entries as 0.3.64's `server.py`
`node_info` builds them from the classes' INPUT_TYPES (tag v0.3.64, commit a125cd84), and what they do:
EmptyAudio makes silence, LoadAudio reads a file of the input folder (its list: the audio and video files
there, live; the simulator reads a FLAC's length and rate from its STREAMINFO and decodes nothing), SaveAudio
writes silence of the clip's length as FLAC (`<prefix>_<counter:05>_.flac`, under `audio/` by
default) and lists it under the node's `audio` key, not `images`: `{"ui": {"audio": [{filename, subfolder,
type}]}}`. The FLAC is a real one (STREAMINFO, then frames of CONSTANT subframes: silence is constant).
"""

from __future__ import annotations

import hashlib
import struct
from pathlib import Path
from typing import Any

from linkpix.simulator.images import get_save_image_path
from linkpix.storage.jsonstore import atomic_write_bytes

_HIDDEN = {"prompt": "PROMPT", "extra_pnginfo": "EXTRA_PNGINFO"}
AUDIO_CLASSES: dict[str, dict[str, Any]] = {
    "EmptyAudio": {
        "input": {"required": {
            "duration": ["FLOAT", {"default": 60.0, "min": 0.0, "max": 18446744073709551615, "step": 0.01,
                                   "tooltip": "Duration of the empty audio clip in seconds"}],
            "sample_rate": ["INT", {"default": 44100, "tooltip": "Sample rate of the empty audio clip."}],
            "channels": ["INT", {"default": 2, "min": 1, "max": 2,
                                 "tooltip": "Number of audio channels (1 for mono, 2 for stereo)."}]}},
        "input_order": {"required": ["duration", "sample_rate", "channels"]},
        "output": ["AUDIO"], "output_is_list": [False], "output_name": ["AUDIO"], "name": "EmptyAudio",
        "display_name": "Empty Audio", "description": "", "python_module": "comfy_extras.nodes_audio",
        "category": "audio", "output_node": False},
    "LoadAudio": {
        "input": {"required": {"audio": [[], {"audio_upload": True}]}},  # the list: filled live (catalogue.py)
        "input_order": {"required": ["audio"]},
        "output": ["AUDIO"], "output_is_list": [False], "output_name": ["AUDIO"], "name": "LoadAudio",
        "display_name": "Load Audio", "description": "", "python_module": "comfy_extras.nodes_audio",
        "category": "audio", "output_node": False},
    "SaveAudio": {
        "input": {"required": {"audio": ["AUDIO"], "filename_prefix": ["STRING", {"default": "audio/ComfyUI"}]},
                  "hidden": _HIDDEN},
        "input_order": {"required": ["audio", "filename_prefix"], "hidden": ["prompt", "extra_pnginfo"]},
        "output": [], "output_is_list": [], "output_name": [], "name": "SaveAudio",
        "display_name": "Save Audio (FLAC)", "description": "", "python_module": "comfy_extras.nodes_audio",
        "category": "audio", "output_node": True},
}

BLOCK = 4096  # samples per FLAC frame
BITS = 16


def flac_silence(samples: int, sample_rate: int, channels: int) -> bytes:
    """A valid FLAC stream of `samples` silent samples per channel (16-bit)."""
    md5 = hashlib.md5(bytes(samples * channels * BITS // 8)).digest()  # of the decoded PCM: all zeros
    info = struct.pack(">HH", BLOCK, BLOCK) + (0).to_bytes(3, "big") + (0).to_bytes(3, "big")
    packed = (sample_rate << 44) | ((channels - 1) << 41) | ((BITS - 1) << 36) | samples
    info += packed.to_bytes(8, "big") + md5
    out = [b"fLaC", bytes([0x80]) + len(info).to_bytes(3, "big"), info]  # last block, type 0: STREAMINFO
    for number, start in enumerate(range(0, samples, BLOCK)):
        size = min(BLOCK, samples - start)
        # sync + fixed blocking; block size from the 16 bits after the number; rate from STREAMINFO;
        # independent channels; 16 bits per sample
        head = bytes([0xFF, 0xF8, 0x70, ((channels - 1) << 4) | 0x08]) + _utf8_number(number)
        head += (size - 1).to_bytes(2, "big")
        head += bytes([_crc8(head)])
        frame = head + (b"\x00" + bytes(BITS // 8)) * channels  # per channel a CONSTANT subframe: 0 then 0
        out.append(frame + _crc16(frame).to_bytes(2, "big"))
    return b"".join(out)


def save_audio(audio: dict[str, Any], filename_prefix: str, folder: Path) -> list[dict[str, str]]:
    """SaveAudio: each clip of the batch as `<prefix>_<counter:05>_.flac`, listed as 0.3.64 lists them."""
    full, filename, counter, subfolder = get_save_image_path(filename_prefix, folder)
    results = []
    for batch_number in range(int(audio.get("batch", 1))):
        name = f"{filename.replace('%batch_num%', str(batch_number))}_{counter:05}_.flac"
        samples = int(round(float(audio["seconds"]) * int(audio["sample_rate"])))
        atomic_write_bytes(full / name, flac_silence(samples, int(audio["sample_rate"]), int(audio["channels"])))
        results.append({"filename": name, "subfolder": subfolder, "type": "output"})
        counter += 1
    return results


def read_audio(path: Path) -> dict[str, Any]:
    """LoadAudio's clip for the simulator: a FLAC's rate, channels and length (STREAMINFO); another kind of
    file (not decoded here) counts as one second of 44.1 kHz stereo."""
    head = path.read_bytes()[:42]
    if head[:4] == b"fLaC" and len(head) >= 42:
        packed = int.from_bytes(head[18:26], "big")
        rate, channels, samples = packed >> 44, ((packed >> 41) & 7) + 1, packed & ((1 << 36) - 1)
        return {"seconds": samples / rate if rate else 0.0, "sample_rate": rate, "channels": channels, "batch": 1}
    return {"seconds": 1.0, "sample_rate": 44100, "channels": 2, "batch": 1}


def _utf8_number(n: int) -> bytes:
    """FLAC's frame number: UTF-8's variable-length coding of an integer."""
    if n < 0x80:
        return bytes([n])
    if n < 0x800:
        return bytes([0xC0 | (n >> 6), 0x80 | (n & 0x3F)])
    if n < 0x10000:
        return bytes([0xE0 | (n >> 12), 0x80 | ((n >> 6) & 0x3F), 0x80 | (n & 0x3F)])
    return bytes([0xF0 | (n >> 18), 0x80 | ((n >> 12) & 0x3F), 0x80 | ((n >> 6) & 0x3F), 0x80 | (n & 0x3F)])


def _crc8(data: bytes) -> int:
    crc = 0
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = ((crc << 1) ^ 0x07) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
    return crc


def _crc16(data: bytes) -> int:
    crc = 0
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x8005) & 0xFFFF if crc & 0x8000 else (crc << 1) & 0xFFFF
    return crc
