"""Edits over real sockets: LinkPix under waitress driving the ComfyUI simulator.

POST /edit with each method (auto picks lut for a colour grade and direct for a spatial edit), `.cube`
output that re-applies to the same result, JSON metadata, a link with image= and mask=, jobs with images and
masks, an async edit, a 24 MP photo returned at 24 MP with its orientation and ICC profile, and the error
cases (not an image, a resized mask, a workflow without an image input, over the limit, a decompression bomb)
with nothing stored half-written.
"""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pillow_lut
import pytest
from jobs_support import JobsServer
from PIL import Image

from linkpix.simulator.grades import apply_grade


def photo(w: int = 640, h: int = 480) -> Image.Image:
    y, x = np.mgrid[0:h, 0:w] / max(w, h)
    arr = np.stack([x * 255, y * 255, (0.5 + 0.5 * np.sin(7 * x * y)) * 255], -1)
    arr[: h // 3] = arr[: h // 3] * 0.3 + np.array([110, 160, 230]) * 0.7
    arr += np.random.default_rng(3).normal(0, 4, arr.shape)
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))


def encoded(img: Image.Image, fmt: str = "PNG", **options) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **options)
    return buf.getvalue()


def opened(data: bytes) -> Image.Image:
    img = Image.open(io.BytesIO(data))
    img.load()
    return img


@pytest.fixture
def server(project: Path, simulator) -> JobsServer:
    s = JobsServer(project, simulator.url)
    yield s
    s.close()


def edit(server: JobsServer, image: bytes, prompt: str, **fields):
    files = {"image": ("photo", image, "application/octet-stream")}
    if "mask" in fields:
        files["mask"] = ("mask", fields.pop("mask"), "application/octet-stream")
    return server.post("/edit", files=files, data={"prompt": prompt, **fields}, timeout=60)


def test_auto_applies_a_colour_grade_at_full_resolution_and_its_cube_reapplies(server, tmp_path):
    src = photo()
    r = edit(server, encoded(src), "give it a teal and orange look", format="png")
    assert r.status_code == 200, r.text
    assert r.headers["X-LinkPix-Edit-Method"] == "lut" and float(r.headers["X-LinkPix-Edit-Fit"]) < 1.5
    assert r.headers["X-LinkPix-Workflow"] == "flux_kontext_edit.json"
    out = np.asarray(opened(r.content)).astype(float)
    assert out.shape == (480, 640, 3)  # the source's size, not the model's 1184x880 grid
    expected = apply_grade(np.asarray(src), "teal and orange").astype(float)
    assert np.abs(out - expected).mean() < 2.0
    again = edit(server, encoded(src), "give it a teal and orange look", format="png")
    assert again.headers["X-LinkPix-Cache"] == "hit" and again.content == r.content

    cube = edit(server, encoded(src), "give it a teal and orange look", format="cube")
    assert cube.status_code == 200 and cube.content.startswith(b"TITLE") and "cube" in \
        cube.headers["Content-Disposition"]
    path = tmp_path / "look.cube"
    path.write_bytes(cube.content)
    reapplied = np.asarray(src.filter(pillow_lut.load_cube_file(str(path)))).astype(float)
    assert np.abs(reapplied - out).max() <= 1


def test_auto_takes_the_region_of_a_spatial_edit_and_methods_can_be_forced(server):
    src = encoded(photo())
    r = edit(server, src, "add a red hat", format="json")
    body = r.json()
    assert r.status_code == 200 and body["method"] == "region", body
    assert body["fit"]["miss"] > 0.02 and (body["width"], body["height"]) == (640, 480)
    assert 0.01 < body["region_share"] < 0.3 and body["notes"][-1].startswith("auto chose region"), body
    forced = edit(server, src, "add a red hat", method="lut", format="png")
    assert forced.headers["X-LinkPix-Edit-Method"] == "lut" and opened(forced.content).size == (640, 480)
    direct = edit(server, src, "make it warm", method="direct", format="png")
    assert direct.headers["X-LinkPix-Edit-Method"] == "direct" and "X-LinkPix-Edit-Fit" not in direct.headers
    assert opened(direct.content).size == (1184, 880) and direct.headers["X-LinkPix-Model-Output-Size"] == "1184x880"
    assert "the model's output as it is, 1184x880 (the photo is 640x480)" in direct.headers["X-LinkPix-Notes"]
    assert edit(server, src, "x", method="sideways").status_code == 400


def test_qwen_edit_and_json_body_with_an_upload_id(server):
    up = server.post("/uploads", data=encoded(photo(400, 300)), headers={"Content-Type": "image/png"})
    assert up.status_code == 201
    r = server.post("/edit", json={"image": up.json()["id"], "prompt": "black and white",
                                   "workflow": "qwen_image_edit", "format": "json"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["method"] == "lut" and (body["width"], body["height"]) == (400, 300)
    out = np.asarray(opened(server.get(body["url"]).content)).astype(int)
    assert np.abs(out[..., 0] - out[..., 2]).mean() < 2  # grey
    model = opened(server.get(body["model_output"]).content)
    assert model.size[0] * model.size[1] > 900_000  # the model ran at about one megapixel


def mask_png(size: tuple[int, int], box: tuple[int, int, int, int]) -> bytes:
    m = Image.new("L", size, 0)
    m.paste(255, box)
    return encoded(m)


def test_link_with_image_and_mask_changes_only_the_masked_area(server):
    src = photo(256, 192)
    image_id = server.post("/uploads", data=encoded(src)).json()["id"]
    mask_id = server.post("/uploads", data=mask_png((256, 192), (64, 48, 192, 144))).json()["id"]
    r = server.get(f"/prompt/a%20cat?workflow=sd15_inpaint&image={image_id}&mask={mask_id}")
    assert r.status_code == 200, r.text
    out = np.asarray(opened(r.content).convert("RGB")).astype(int)
    ref = np.asarray(src).astype(int)
    assert out.shape == ref.shape
    outside = np.ones(ref.shape[:2], bool)
    outside[40:152, 56:200] = False
    outside[-12:, -90:] = False  # the simulator's mark
    assert np.abs(out - ref)[outside].max() <= 2
    assert np.abs(out - ref)[60:130, 80:180].mean() > 20
    bad = server.get(f"/prompt/a%20cat?workflow=sd15&image={image_id}")
    assert bad.status_code == 400 and "sd15_img2img.json" in bad.json()["message"]
    nomask = server.get(f"/prompt/a%20cat?workflow=sd15_img2img&image={image_id}&mask={mask_id}")
    assert nomask.status_code == 400 and "sd15_inpaint.json" in nomask.json()["message"]


def test_jobs_with_images_and_masks_and_an_async_edit(server):
    src = photo(256, 192)
    image_id = server.post("/uploads", data=encoded(src)).json()["id"]
    small_mask = mask_png((64, 48), (16, 12, 48, 36))  # another size: resized, and said so
    job = server.wait_for(server.submit(prompt="a dog", workflow="sd15_inpaint", images=[image_id],
                                        mask=__import__("base64").b64encode(small_mask).decode()))
    assert job["status"] == "succeeded", job
    r = server.post("/edit?async=1", files={"image": ("p", encoded(photo(500, 400)))},
                    data={"prompt": "faded film"})
    assert r.status_code == 202, r.text
    done = server.wait_for(r.json()["job_id"])
    assert done["status"] == "succeeded", done
    out = opened(server.get(done["images"][0]["url"]).content)
    assert out.size == (500, 400)
    notes = edit(server, encoded(src), "a dog", workflow="sd15_inpaint", mask=small_mask, format="json")
    assert notes.status_code == 200 and "the mask was resized to the photo's 256x192" in notes.json()["notes"]


def test_an_inpainting_edit_comes_back_at_full_resolution_changing_only_the_masked_area(server):
    src = photo(256, 192).resize((1600, 1200))  # the model works at about 0.6 MP: 1600x1200 is downscaled
    mask = mask_png((1600, 1200), (400, 300, 1200, 900))
    r = edit(server, encoded(src, "JPEG", quality=95), "a dog", workflow="sd15_inpaint", mask=mask,
             method="region")
    assert r.status_code == 200, r.text
    assert r.headers["X-LinkPix-Edit-Method"] == "region" and "X-LinkPix-Notes" not in r.headers
    out = np.asarray(opened(r.content).convert("RGB")).astype(int)
    ref = np.asarray(opened(encoded(src, "JPEG", quality=95)).convert("RGB")).astype(int)
    assert out.shape == ref.shape == (1200, 1600, 3)  # full resolution, not the model's
    outside = np.ones(ref.shape[:2], bool)
    outside[280:920, 380:1220] = False  # the mask and its softened edge
    assert np.abs(out - ref)[outside].mean() < 1.5  # the original, through one more JPEG encode
    assert np.abs(out - ref)[400:800, 500:1100].mean() > 20  # the model's change, upscaled into place
    # the same edit with a mask of another size: resized to the photo, and said so
    smaller = edit(server, encoded(src), "a dog", workflow="sd15_inpaint", mask=mask_png((160, 120), (40, 30, 120, 90)),
                   format="json")
    assert smaller.status_code == 200 and "the mask was resized to the photo's 1600x1200" in smaller.json()["notes"]
    assert (smaller.json()["width"], smaller.json()["height"]) == (1600, 1200)
    # and as a job: the mask is kept with the photo, so the job finishes at full resolution too
    queued = server.post("/edit?async=1", files={"image": ("p", encoded(src)), "mask": ("m", mask)},
                         data={"prompt": "a dog", "workflow": "sd15_inpaint", "method": "region"})
    assert queued.status_code == 202, queued.text
    done = server.wait_for(queued.json()["job_id"])
    assert done["status"] == "succeeded", done
    as_job = np.asarray(opened(server.get(done["images"][0]["url"]).content).convert("RGB")).astype(int)
    assert as_job.shape == (1200, 1600, 3) and np.abs(as_job - ref)[outside].mean() < 1.5


def test_a_24_megapixel_photo_comes_back_at_24_megapixels_with_orientation_and_icc(server):
    big = photo(600, 400).resize((6000, 4000))
    exif = Image.Exif()
    exif[0x0112] = 6
    icc = b"\0\0\0\x14linkpix-test-profile"
    r = edit(server, encoded(big, "JPEG", quality=90, exif=exif.tobytes(), icc_profile=icc), "warm")
    assert r.status_code == 200, r.text
    assert r.headers["X-LinkPix-Edit-Method"] == "lut" and r.headers["Content-Type"] == "image/jpeg"
    out = opened(r.content)
    assert out.size == (6000, 4000) and out.getexif()[0x0112] == 6 and out.info["icc_profile"] == icc


def bomb() -> bytes:
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 30000, 30000, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\0" * 100)) + chunk(b"IEND", b""))


def test_errors_are_clear_and_nothing_is_stored_half_written(project, simulator):
    server = JobsServer(project, simulator.url, max_upload_mb=0.05)
    try:
        uploads = project / "data" / "uploads"
        cases = [
            (b"not an image at all", 400, "not a PNG"),
            (b"\x89PNG\r\n\x1a\n" + b"then text" * 20, 400, "damaged or incomplete"),
            (encoded(photo(64, 48))[:-40], 400, "damaged or incomplete"),
            (bomb(), 413, "pixels"),
            (encoded(Image.effect_noise((256, 256), 80).convert("RGB")), 413, "max_upload_mb"),
        ]
        for data, status, hint in cases:
            for r in (edit(server, data, "warm"), server.post("/uploads", data=data)):
                assert r.status_code == status, (hint, r.status_code, r.text)
                assert hint in r.json()["message"], (hint, r.json())
        assert list(uploads.glob("*")) == [] and simulator.prompts_received == 0
        assert not any(p.is_file() for p in (project / "cache").rglob("*"))
        r = edit(server, encoded(photo(64, 48)), "warm", workflow="sd15")
        assert r.status_code == 400 and "workflows that take an image" in r.json()["message"]
        assert "flux_kontext_edit.json" in r.json()["details"]["allowed"]
        assert server.post("/edit", data="x", headers={"Content-Type": "text/plain"}).status_code == 415
        assert server.post("/edit", data={"prompt": "warm"}).status_code == 400
        listing = server.get("/api/workflows").json()
        assert listing["needs"]["sd15_inpaint.json"] == {"image": True, "mask": "alpha"}
        assert listing["needs"]["sd15.json"] == {"image": False, "mask": None}
        assert listing["edit_default"] == "flux_kontext_edit.json"
    finally:
        server.close()
