"""Region edits over real sockets: LinkPix under waitress driving the ComfyUI simulator, whose spatial edit
re-renders the whole frame slightly off (colour drift, blur, noise) and draws a disc.

The answer must be the photo at its own size with the disc from the model and every other pixel the
photo's own (CIEDE2000 and fine detail measured against the simulator's truth, tests/region_support.py);
`auto` says why it chose region; the mask comes back on request; EXIF orientation, ICC and format are kept;
a user's mask wins; `direct` says it is the model's size; /edit reads its query string like other routes;
workflows that edit an image refuse to run without one on links, jobs and the OpenAI front.
"""

from __future__ import annotations

import base64
import io
from pathlib import Path

import numpy as np
import openai
import pytest
from fronts_support import FrontServer
from jobs_support import JobsServer
from PIL import Image, ImageDraw, ImageOps
from region_support import detailed_photo, figures, high_pass_correlation, jpeg, truth

from linkpix.edit import compose, lut, region
from linkpix.simulator import grades


@pytest.fixture
def server(project: Path, simulator) -> JobsServer:
    s = JobsServer(project, simulator.url)
    yield s
    s.close()


def edit(server: JobsServer, image: bytes, prompt: str, query: str = "", **fields):
    files = {"image": ("photo", image, "application/octet-stream")}
    if "mask" in fields:
        files["mask"] = ("mask", fields.pop("mask"), "application/octet-stream")
    return server.post("/edit" + query, files=files, data={"prompt": prompt, **fields}, timeout=120)


def opened(data: bytes) -> Image.Image:
    img = Image.open(io.BytesIO(data))
    img.load()
    return img


def png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


# -- finding the region (no server: the functions the route uses) -------------------------------------
@pytest.mark.parametrize("prompt", ["add a disc", "remove the lamp"])
def test_the_region_is_where_the_model_changed_the_picture_not_its_re_render(prompt):
    small = detailed_photo(1248, 832, seed=2)
    output = grades.edit(small, prompt, 7)
    table = lut.extract(np.asarray(small), np.asarray(output))
    found = region.find(small, output, table)
    disc = np.asarray(grades.spatial_region(small.size, 7)) > 127
    mine = found.mask > 0.5
    iou = (mine & disc).sum() / (mine | disc).sum()
    assert iou > 0.85, iou  # the disc, plus the corner mark; not the drifted, blurred, noisy rest
    assert 0.07 < found.share < 0.12


def test_a_colour_grade_leaves_no_region_but_the_models_mark():
    small = detailed_photo(1248, 832, seed=3)
    output = grades.edit(small, "warm", 1)
    found = region.find(small, output, lut.extract(np.asarray(small), np.asarray(output)))
    assert found.share < 0.01
    box = found.box()
    assert box is not None and box[0] > 1248 * 0.6 and box[1] > 832 * 0.9  # the 'SIMULATED' corner only


def test_boxes_map_from_upright_to_stored_for_every_exif_orientation():
    stored = Image.fromarray(np.random.default_rng(0).integers(0, 255, (30, 50, 3), dtype=np.uint8))
    for orientation in range(1, 9):
        exif = Image.Exif()
        exif[0x0112] = orientation
        shown = ImageOps.exif_transpose(_with_exif(stored, exif))
        assert shown.size == compose.upright_size(stored.size, orientation)
        patch = Image.new("RGB", (14, 15), (255, 0, 0))
        mask = np.zeros((shown.height, shown.width), np.float32)
        mask[5:20, 3:17] = 1.0
        target = stored.copy()
        compose.paste(target, orientation, _canvas(shown.size, patch, (3, 5)), mask[5:20, 3:17], (3, 5, 17, 20))
        turned = ImageOps.exif_transpose(_with_exif(target, exif))
        expected = shown.copy()
        expected.paste(patch, (3, 5))
        assert np.array_equal(np.asarray(turned), np.asarray(expected)), orientation


def _with_exif(img: Image.Image, exif: Image.Exif) -> Image.Image:
    buf = io.BytesIO()
    img.save(buf, "PNG", exif=exif.tobytes())
    return opened(buf.getvalue())


def _canvas(size: tuple[int, int], patch: Image.Image, at: tuple[int, int]) -> Image.Image:
    out = Image.new("RGB", size, (0, 0, 0))
    out.paste(patch, at)
    return out


# -- over sockets --------------------------------------------------------------------------------------
def _check_region_edit(server: JobsServer, src: Image.Image, body: dict, result: Image.Image) -> dict:
    assert body["method"] == "region" and result.size == src.size, body
    model = opened(server.get(body["model_output"]).content)
    got = figures(np.asarray(src), np.asarray(result.convert("RGB")), model, body["seed"])
    assert got["outside_de"] <= 1.0 and got["detail_corr"] >= 0.9 and got["inside_de"] <= 3.0, got
    return got


@pytest.mark.slow
def test_a_spatial_edit_comes_back_at_the_photos_size_with_only_the_region_from_the_model(server):
    src = detailed_photo(2400, 1600)
    icc = b"\0\0\0\x14linkpix-test-profile"
    exif = Image.Exif()
    exif[0x010F] = "LinkPixCam"  # Make
    data = jpeg(src, icc_profile=icc, exif=exif.tobytes())
    r = edit(server, data, "add a disc", format="json")
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["width"], body["height"]) == (2400, 1600) and body["format"] == "jpeg"
    assert 0.07 < body["region_share"] < 0.12 and body["notes"][-1].startswith("auto chose region:"), body
    result = opened(server.get(body["url"]).content)
    assert result.format == "JPEG" and result.info["icc_profile"] == icc and result.getexif()[0x010F] == "LinkPixCam"
    _check_region_edit(server, opened(data).convert("RGB"), body, result)
    # the model's own pixels, upscaled, would not keep the photo's detail: the check above means something
    model = opened(server.get(body["model_output"]).content)
    upscaled = model.convert("RGB").resize(src.size, Image.Resampling.BICUBIC)
    assert high_pass_correlation(np.asarray(src)[:256, :256], np.asarray(upscaled)[:256, :256]) < 0.8
    # the mask: a URL in the JSON, and format=mask; at the photo's size, white where the model's pixels are
    mask = opened(server.get(body["mask_url"]).content)
    assert mask.mode == "L" and mask.size == (2400, 1600)
    inside, outside = truth((2400, 1600), model.size, body["seed"])
    levels = np.asarray(mask)
    assert levels[inside].min() >= 250 and levels[outside].max() == 0
    direct_mask = edit(server, data, "add a disc", format="mask")
    assert direct_mask.headers["Content-Type"] == "image/png"
    assert np.array_equal(np.asarray(opened(direct_mask.content)), levels)
    # the image itself: the method and the share in headers
    r = edit(server, data, "add a disc")
    assert r.headers["X-LinkPix-Edit-Method"] == "region" and r.headers["Content-Type"] == "image/jpeg"
    assert abs(float(r.headers["X-LinkPix-Region-Share"]) - body["region_share"]) < 1e-3


def test_format_mask_answers_the_region_whatever_the_method_would_pick(server):
    """A colour grade (auto picks lut) and method=lut asked for format=mask: the mask of what the model changed
    beyond the grade (here only the simulator's corner mark), never a 500 (found by Schemathesis: the lut path
    tried to save the picture as 'mask')."""
    data = jpeg(detailed_photo(600, 400, seed=4))
    for fields in ({}, {"method": "lut"}):
        r = edit(server, data, "warm", format="mask", **fields)
        assert r.status_code == 200 and r.headers["Content-Type"] == "image/png", r.text
        mask = opened(r.content)
        assert mask.mode == "L" and mask.size == (600, 400)
        assert (np.asarray(mask) > 127).mean() < 0.02  # a grade is no region


@pytest.mark.slow
def test_orientation_is_kept_and_the_region_lands_where_it_is_shown(server):
    shown = detailed_photo(1200, 1800, seed=9)  # portrait as shown
    exif = Image.Exif()
    exif[0x0112] = 6  # stored landscape, turned a quarter clockwise to view
    stored = shown.transpose(Image.Transpose.ROTATE_90)
    data = jpeg(stored, exif=exif.tobytes())
    r = edit(server, data, "add a disc", format="json")
    body = r.json()
    assert r.status_code == 200 and (body["width"], body["height"]) == (1200, 1800), body
    result = opened(server.get(body["url"]).content)
    assert result.size == (1800, 1200) and result.getexif()[0x0112] == 6  # stored as it was
    upright = ImageOps.exif_transpose(result)
    _check_region_edit(server, ImageOps.exif_transpose(opened(data)).convert("RGB"), body, upright)


@pytest.mark.slow
def test_a_users_mask_wins_and_a_mask_on_the_files_grid_is_turned(server):
    shown = detailed_photo(640, 960, seed=4)
    exif = Image.Exif()
    exif[0x0112] = 6
    data = jpeg(shown.transpose(Image.Transpose.ROTATE_90), exif=exif.tobytes())
    mask = Image.new("L", (640, 960), 0)
    ImageDraw.Draw(mask).rectangle((0, 0, 319, 959), fill=255)  # the left half as shown
    r = edit(server, data, "a dog", workflow="sd15_inpaint", mask=png(mask), method="region", format="json")
    body = r.json()
    assert r.status_code == 200 and body["method"] == "region" and abs(body["region_share"] - 0.5) < 0.01, body
    assert not any("turned" in n for n in body["notes"])
    # the same mask drawn on the file's stored grid (960x640): turned like the photo, not stretched
    on_file = mask.transpose(Image.Transpose.ROTATE_90)
    turned = edit(server, data, "a dog", workflow="sd15_inpaint", mask=png(on_file), method="region",
                  format="json").json()
    assert any("turned with the picture's EXIF orientation to 640x960" in n for n in turned["notes"]), turned
    a = np.asarray(ImageOps.exif_transpose(opened(server.get(body["url"]).content)).convert("RGB")).astype(int)
    b = np.asarray(ImageOps.exif_transpose(opened(server.get(turned["url"]).content)).convert("RGB")).astype(int)
    assert a.shape == b.shape == (960, 640, 3) and np.abs(a - b).mean() < 1.0


@pytest.mark.slow
def test_direct_is_the_models_output_and_says_so_and_methods_are_checked(server):
    data = jpeg(detailed_photo(1800, 1200))
    r = edit(server, data, "add a disc", method="direct")
    assert r.headers["X-LinkPix-Edit-Method"] == "direct" and opened(r.content).size == (1248, 832)
    assert r.headers["X-LinkPix-Model-Output-Size"] == "1248x832"
    assert "the model's output as it is, 1248x832 (the photo is 1800x1200)" in r.headers["X-LinkPix-Notes"]
    lut_forced = edit(server, data, "add a disc", method="lut", format="json").json()
    assert lut_forced["method"] == "lut" and (lut_forced["width"], lut_forced["height"]) == (1800, 1200)
    warm = edit(server, data, "make it warm", format="json").json()
    assert warm["method"] == "lut" and warm["notes"][-1].startswith("auto chose lut: a colour table explains")
    bad = edit(server, data, "x", method="sideways")
    assert bad.status_code == 400 and "auto, lut, region or direct" in bad.json()["message"]


@pytest.mark.slow
def test_the_query_string_is_read_like_every_other_routes(server):
    data = jpeg(detailed_photo(480, 320))
    r = edit(server, data, "add a disc", query="?method=region&foo=1&format=json")
    assert r.status_code == 200 and r.json()["method"] == "region" and r.json()["ignored"] == ["foo"], r.text
    image = edit(server, data, "add a disc", query="?bar=2")
    assert image.status_code == 200 and image.headers["X-LinkPix-Ignored"] == "bar"
    for query, parameter in (("?method=bogus", "method"), ("?method=lut&method=region", "method"),
                             ("?format=tiff", "format"), ("?async=maybe", "async"), ("?prompt=twice", "prompt")):
        bad = edit(server, data, "add a disc", query=query)
        assert bad.status_code == 400 and bad.json()["details"]["parameter"] == parameter, (query, bad.text)


def test_workflows_that_edit_an_image_refuse_to_run_without_one(server, project, simulator):
    for workflow in ("flux_kontext_edit", "sd15_inpaint", "sd15_img2img", "qwen_image_edit"):
        link = server.get(f"/prompt/a%20fox?workflow={workflow}")
        assert link.status_code == 400 and link.json()["details"]["parameter"] == "image", link.text
        assert "edits an input image and none was sent" in link.json()["message"]
        job = server.post("/generate", json={"prompt": "a fox", "workflow": workflow})
        assert job.status_code == 400 and job.json()["details"]["parameter"] == "image", job.text
    assert server.get("/prompt/a%20fox?workflow=sd15").status_code == 200
    front = FrontServer(project, simulator.url)
    try:
        client = openai.OpenAI(base_url=front.url + "/v1", api_key="loopback", max_retries=0, timeout=60)
        with pytest.raises(openai.BadRequestError) as refused:
            client.images.generate(prompt="a fox", model="sd15_inpaint", size="64x64")
        assert refused.value.status_code == 400 and "none was sent" in str(refused.value)
        ids = {m.id for m in client.models.list()}
        assert {"sd15", "demo", "dall-e-3"} <= ids
        assert not ids & {"sd15_inpaint", "sd15_img2img", "flux_kontext_edit", "qwen_image_edit"}
    finally:
        front.close()


@pytest.mark.slow
def test_a_24_megapixel_spatial_edit(server):
    src = detailed_photo(6000, 4000)
    data = jpeg(src)
    del src
    r = edit(server, data, "add a disc", format="json")
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["width"], body["height"]) == (6000, 4000) and body["method"] == "region", body
    result = opened(server.get(body["url"]).content)
    got = _check_region_edit(server, opened(data).convert("RGB"), body, result)
    print("24 MP region edit:", got)


@pytest.mark.slow
def test_each_user_has_their_own_result_and_mask(project, simulator):
    """Stored images (result and mask alike) live in the user's own part of the cache: the same edit by
    another key is computed and stored for that user, never answered from the first user's entry. (Their
    URLs are unguessable capability links, served to whoever has them, like every stored image's.)"""
    server = JobsServer(project, simulator.url, network_access=True, api_keys={"k-alice": "alice", "k-bob": "bob"})
    try:
        data = jpeg(detailed_photo(480, 320))
        bodies = {}
        for key, user in (("k-alice", "alice"), ("k-bob", "bob")):
            r = server.post("/edit", files={"image": ("p.jpg", data)},
                            data={"prompt": "add a disc", "format": "json", "seed": "5"}, headers={"X-API-Key": key})
            body = r.json()
            assert r.status_code == 200 and body["cache"] == "miss", body
            assert body["mask_url"].startswith(f"/images/{user}/") and body["url"].startswith(f"/images/{user}/")
            bodies[user] = body
        assert bodies["alice"]["mask_url"].split("/")[-1] == bodies["bob"]["mask_url"].split("/")[-1]
        again = server.post("/edit", files={"image": ("p.jpg", data)}, headers={"X-API-Key": "k-bob"},
                            data={"prompt": "add a disc", "format": "json", "seed": "5"})
        assert again.json()["cache"] == "hit" and again.json()["mask_url"] == bodies["bob"]["mask_url"]
        assert server.get("/images/bob/" + "0" * 32 + ".png", headers={"X-API-Key": "k-bob"}).status_code == 404
    finally:
        server.close()


# -- finish's choices on pictures the simulator does not make -----------------------------------------
def _finished(img: Image.Image, output: Image.Image, method: str = "auto", fmt: str | None = None):
    from linkpix.edit import finish, resize
    prep = finish.prepare(png(img), resize.Profile("t", 320 * 240, 8))
    return prep, finish.finish(prep, png(output.resize(prep.small.size)), method, fmt)


def test_auto_keeps_the_models_output_when_it_changed_most_of_the_picture():
    src = detailed_photo(640, 480, seed=1)
    blocks = np.random.default_rng(8).integers(0, 256, (12, 16, 3), dtype=np.uint8)  # a different picture
    restyled = Image.fromarray(blocks).resize((640, 480), Image.Resampling.NEAREST)
    _, result = _finished(src, restyled)
    assert result.method == "direct" and "a restyle, not a local edit" in result.notes[0], result.notes


def test_a_transparent_png_keeps_its_alpha_and_a_tiny_photo_works():
    src = detailed_photo(400, 300, seed=6).convert("RGBA")
    alpha = Image.new("L", src.size, 255)
    ImageDraw.Draw(alpha).rectangle((0, 0, 80, 300), fill=0)
    src.putalpha(alpha)
    small = src.convert("RGB").resize((320, 240))
    prep, result = _finished(src, grades.edit(small, "add a disc", 2), "region")
    out = opened(result.data)
    assert result.method == "region" and out.mode == "RGBA" and out.size == (400, 300)
    assert np.array_equal(np.asarray(out.getchannel("A")), np.asarray(alpha))
    tiny = detailed_photo(40, 30, seed=2)
    _, result = _finished(tiny, grades.edit(tiny, "add a disc", 1), "region")
    assert result.method == "region" and opened(result.data).size == (40, 30)


@pytest.mark.slow
def test_openai_images_edit_of_a_spatial_edit_comes_back_at_the_photos_size(project, simulator):
    front = FrontServer(project, simulator.url)
    try:
        src = detailed_photo(1800, 1200, seed=12)
        client = openai.OpenAI(base_url=front.url + "/v1", api_key="loopback", max_retries=0, timeout=120)
        result = client.images.edit(image=("p.jpg", jpeg(src), "image/jpeg"), prompt="add a disc",
                                    response_format="b64_json")
        out = np.asarray(opened(base64.b64decode(result.data[0].b64_json)).convert("RGB"))
        assert out.shape == (1200, 1800, 3)  # not the model's 1248x832
        corner = np.asarray(opened(jpeg(src)).convert("RGB"))[:200, :300]
        assert high_pass_correlation(corner, out[:200, :300]) > 0.95  # the photo's own pixels there
    finally:
        front.close()


@pytest.mark.slow
def test_the_dashboards_summary_names_the_region_and_autos_reason():
    from linkpix.dashboard.edit_tab import summary
    text = summary({"method": "region", "fit": {"mean": 3.5, "p95": 20.0, "miss": 0.09}, "width": 6000,
                    "height": 4000, "format": "jpeg", "cache": "miss", "region_share": 0.091,
                    "notes": ["auto chose region: a colour table does not explain the model's output"]})
    assert "Method: region" in text and "9.1 % of the picture" in text and "auto chose region" in text


@pytest.mark.slow
def test_a_links_mask_on_the_files_grid_is_turned_not_stretched(server):
    shown = detailed_photo(320, 480, seed=4)
    exif = Image.Exif()
    exif[0x0112] = 6
    photo_id = server.post("/uploads", data=jpeg(shown.transpose(Image.Transpose.ROTATE_90), exif=exif.tobytes()),
                           headers={"Content-Type": "image/jpeg"}).json()["id"]
    mask = Image.new("L", (320, 480), 0)
    ImageDraw.Draw(mask).rectangle((0, 0, 159, 479), fill=255)
    ids = [server.post("/uploads", data=png(m), headers={"Content-Type": "image/png"}).json()["id"]
           for m in (mask, mask.transpose(Image.Transpose.ROTATE_90), mask.resize((160, 240)))]
    notes = [server.get(f"/prompt/a%20dog?workflow=sd15_inpaint&image={photo_id}&mask={i}").headers.get(
        "X-LinkPix-Notes", "") for i in ids]
    assert notes[0] == ""
    assert "turned with the picture's EXIF orientation to 320x480" in notes[1]
    assert "the mask was resized to the image's 320x480" in notes[2]


@pytest.mark.slow
def test_an_output_shifted_by_the_model_is_moved_back_before_the_region_is_found():
    from scipy import ndimage

    from linkpix.edit import finish, resize
    src = detailed_photo(1248, 832, seed=11)
    prep = finish.prepare(png(src), resize.KONTEXT)
    model = np.asarray(grades.edit(prep.small, "add a disc", 4))
    shifted = np.stack([ndimage.shift(model[..., c], (-1.0, 2.0), order=1, mode="nearest") for c in range(3)], -1)
    result = finish.finish(prep, png(Image.fromarray(shifted)), "auto", "png", want_mask=True)
    assert result.method == "region" and "shifted by 2.0, -1.0 working-size pixels" in result.notes[0], result.notes
    assert 0.08 < result.region_share < 0.11  # the disc and the mark, not every edge of the picture
    mask = np.asarray(opened(result.mask_png))
    out = np.asarray(opened(result.data).convert("RGB"))
    assert np.array_equal(out[mask == 0], np.asarray(src)[mask == 0])  # the photo's own pixels, untouched


@pytest.mark.slow
def test_a_region_edit_as_a_job_comes_back_at_the_photos_size(server):
    src = detailed_photo(1500, 1000, seed=13)
    queued = server.post("/edit?async=1", files={"image": ("p.jpg", jpeg(src))}, data={"prompt": "add a disc"})
    assert queued.status_code == 202, queued.text
    done = server.wait_for(queued.json()["job_id"])
    assert done["status"] == "succeeded", done
    out = np.asarray(opened(server.get(done["images"][0]["url"]).content).convert("RGB"))
    assert out.shape == (1000, 1500, 3)
    assert high_pass_correlation(np.asarray(opened(jpeg(src)).convert("RGB"))[:200, :300], out[:200, :300]) > 0.95
    refused = server.post("/edit?async=1", files={"image": ("p.jpg", jpeg(src))},
                          data={"prompt": "add a disc", "format": "mask"})
    assert refused.status_code == 400 and refused.json()["details"]["parameter"] == "format"
