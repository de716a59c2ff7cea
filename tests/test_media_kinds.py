"""What a run's files are and how they are kept (fast, no server): ComfyUI's output keys read in order, a
still picture encoded while a video, a sound or an animated picture stays as it came, the cache finding
and evicting them, and uploads told apart by their bytes."""

from __future__ import annotations

import io

from PIL import Image

from linkpix.comfy import OutputImage
from linkpix.comfy.events import output_refs
from linkpix.pipeline.media import media_kind, stored_form
from linkpix.simulator.audio import flac_silence
from linkpix.storage.cache import ImageCache
from linkpix.storage.media import FILE_RE, file_format, media_input, sniff_media

MP4 = b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2" + b"\x00" * 40


def output(data: bytes, filename: str, kind: str = "images") -> OutputImage:
    return OutputImage(data, filename, "", "output", "9", "p", "application/octet-stream", kind)


def picture(fmt: str = "PNG", frames: int = 1) -> bytes:
    out = io.BytesIO()
    images = [Image.new("RGB", (16, 12), (i * 60, 20, 30)) for i in range(frames)]
    images[0].save(out, fmt, save_all=frames > 1, append_images=images[1:])
    return out.getvalue()


def test_output_refs_read_every_file_key_pictures_first():
    outputs = {
        "3": {"audio": [{"filename": "a.flac", "subfolder": "audio", "type": "output"}]},
        "7": {"images": [{"filename": "v.mp4", "subfolder": "video", "type": "output"}], "animated": [True]},
        "8": {"text": ["not a file"], "3d": [{"filename": "m.glb", "subfolder": "", "type": "output"}]},
        "9": {"images": [{"filename": "p.png", "subfolder": "", "type": "temp"}]},
    }
    refs = output_refs(outputs)
    assert [(node, ref["filename"], ref["kind"]) for node, ref in refs] == [
        ("7", "v.mp4", "images"), ("3", "a.flac", "audio"), ("8", "m.glb", "3d")]  # saved ones, `images` first
    assert [ref["filename"] for _, ref in output_refs({"9": outputs["9"]})] == ["p.png"]  # else the previews


def test_a_still_picture_is_encoded_and_everything_else_kept_as_it_came():
    still = stored_form(output(picture(), "ComfyUI_00001_.png"), "jpeg", False, {"9": {"class_type": "SaveImage"}})
    assert still.fmt == "jpeg" and still.data[:3] == b"\xff\xd8\xff" and still.meta["media"] == "image"
    assert (still.meta["width"], still.meta["height"], still.meta["node_type"]) == (16, 12, "SaveImage")

    animated = picture("WEBP", frames=3)
    kept = stored_form(output(animated, "ComfyUI_00001_.webp"), "jpeg", True, {})
    assert (kept.fmt, kept.data, kept.meta["media"], kept.meta["width"]) == ("webp", animated, "image", 16)

    video = stored_form(output(MP4, "lp_00001_.mp4"), "png", True, {"9": {"class_type": "SaveVideo"}})
    assert (video.fmt, video.data, video.meta["media"], video.meta["width"]) == ("mp4", MP4, "video", None)
    flac = flac_silence(100, 8000, 1)
    sound = stored_form(output(flac, "x_00001_.flac", "audio"), "png", False, {})
    assert (sound.fmt, sound.data, sound.meta["media"], sound.meta["comfy_kind"]) == ("flac", flac, "audio", "audio")
    assert stored_form(output(b"<svg/>", "evil.svg", "3d"), "png", False, {}).fmt == "bin"  # never served as SVG


def test_the_kind_follows_the_key_when_it_says_it_else_the_file():
    assert media_kind("mp4", "gifs") == "video" and media_kind("gif", "gifs") == "video"
    assert media_kind("latent", "latents") == "latent" and media_kind("glb", "3d") == "file"
    assert media_kind("mp4", "images") == "video" and media_kind("webp", "images") == "image"
    assert file_format("A.JPG") == "jpeg" and file_format("clip.m4v") == "mp4" and file_format("page.html") == "bin"


def test_the_cache_keeps_finds_and_evicts_videos_beside_pictures(tmp_path):
    cache = ImageCache(tmp_path, max_bytes=200)
    cache.put("alice", "a" * 32, "png", picture(), {})
    stored = cache.put("alice", "b" * 32, "mp4", MP4, {"media": "video"})
    assert stored.content_type == "video/mp4" and stored.url == f"/images/alice/{'b' * 32}.mp4"
    found = cache.get("alice", "b" * 32)
    assert found is not None and found.read() == MP4 and found.fmt == "mp4"
    assert cache.lookup_file("alice", f"{'b' * 32}.mp4").size == len(MP4)
    assert cache.get("bob", "b" * 32) is None  # per user, as pictures
    assert FILE_RE.match(f"{'b' * 32}.flac") and not FILE_RE.match(f"{'b' * 32}.html")
    again = ImageCache(tmp_path, max_bytes=200)  # a restart counts what is on disk, videos included
    assert again.stats()["images"] == 2
    cache.put("alice", "c" * 32, "mp4", MP4 * 3, {})  # over max_bytes: the oldest go first
    assert cache.get("alice", "a" * 32) is None and cache.get("alice", "c" * 32) is not None


def test_uploads_are_told_apart_by_their_bytes():
    assert sniff_media(flac_silence(10, 8000, 1)) == "flac" and sniff_media(MP4) == "mp4"
    assert sniff_media(b"ID3\x04rest") == "mp3" and sniff_media(b"RIFF\0\0\0\0WAVEfmt ") == "wav"
    assert sniff_media(b"\x1a\x45\xdf\xa3....webm") == "webm" and sniff_media(b"OggS\0\x02") == "ogg"
    assert sniff_media(picture("JPEG")) is None and sniff_media(b"<html>") is None
    made = media_input(MP4)
    assert made is not None and made.name.startswith("linkpix_") and made.name.endswith(".mp4")
