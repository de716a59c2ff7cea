"""The edit pipeline's pieces on known transforms: LUT extraction (identity, gamma, channel swap,
desaturation, unseen colours), `.cube` files re-applied by another reader, the fit that tells a
colour edit from a spatial one, and what an input image must be."""

from __future__ import annotations

import io
import zlib

import numpy as np
import pytest
from PIL import Image

from linkpix.edit import finish, fit, lut, resize
from linkpix.errors import BadRequest, ImageTooLarge
from linkpix.imaging import photo


def photo_like(w: int = 320, h: int = 240, seed: int = 0) -> np.ndarray:
    """Gradients, a skin-like and a sky-like patch, fine texture and noise."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w] / max(w, h)
    img = np.stack([x * 255, y * 255, (0.5 + 0.5 * np.sin(9 * x * y)) * 255], axis=-1)
    img[: h // 3, :] = img[: h // 3, :] * 0.3 + np.array([110, 160, 230]) * 0.7  # sky
    img[h // 2:, w // 3: w // 2] = img[h // 2:, w // 3: w // 2] * 0.2 + np.array([224, 172, 140]) * 0.8  # skin
    img += 12 * np.sin(x[..., None] * 300) + rng.normal(0, 5, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def applied(src: np.ndarray, table: np.ndarray) -> np.ndarray:
    return np.asarray(lut.apply(Image.fromarray(src), table)).astype(np.float64)


SRC = photo_like()


@pytest.mark.parametrize("name,transform,mean_limit", [
    ("identity", lambda a: a, 0.0),
    ("gamma", lambda a: (255 * (a / 255.0) ** 0.6).astype(np.uint8), 1.0),
    ("channel swap", lambda a: a[..., [2, 0, 1]], 1.0),
    ("desaturation", lambda a: np.repeat((a @ [0.299, 0.587, 0.114]).astype(np.uint8)[..., None], 3, -1), 1.0),
])
def test_extracted_table_reproduces_known_transforms(name, transform, mean_limit):
    dst = np.ascontiguousarray(transform(SRC))
    out = applied(SRC, lut.extract(SRC, dst))
    err = np.abs(out - dst)
    assert err.mean() <= mean_limit, (name, err.mean())
    assert np.percentile(err, 99) <= 6, (name, np.percentile(err, 99))


def test_identity_table_is_exactly_identity_and_unseen_colours_keep_their_neighbours_shift():
    assert np.array_equal(applied(SRC, lut.extract(SRC, SRC)), SRC)
    dark = np.full((64, 64, 3), 40, np.uint8)  # one colour only: every other node is unseen
    table = lut.extract(dark, dark + 20)
    bright = np.full((8, 8, 3), 200, np.uint8)
    assert np.abs(applied(bright, table) - 220).max() <= 1  # the +20 shift, carried to unseen colours


def test_a_small_patch_that_no_colour_table_explains_does_not_bend_the_table():
    dst = (255 * (SRC / 255.0) ** 0.8).astype(np.uint8)
    marked = dst.copy()
    marked[-12:, -60:] = (0, 0, 0)  # a watermark-like mark in a corner
    clean = applied(SRC, lut.extract(SRC, dst))
    robust = applied(SRC, lut.extract(SRC, marked))
    assert np.abs(robust[:-12] - clean[:-12]).mean() < 0.3


def test_cube_file_reapplies_to_the_same_result_with_another_reader(tmp_path):
    """pillow-lut parses the .cube text itself (its own reader), so node order and domain are checked."""
    import pillow_lut

    dst = (255 * (SRC / 255.0) ** 0.7).astype(np.uint8)[..., [1, 2, 0]]
    table = lut.extract(SRC, np.ascontiguousarray(dst))
    ours = applied(SRC, table)
    data = lut.to_cube(table)
    assert data.startswith(b"TITLE") and b"LUT_3D_SIZE 33" in data
    assert len(data.decode().strip().splitlines()) == 4 + 33**3
    path = tmp_path / "look.cube"
    path.write_bytes(data)
    by_pillow_lut = np.asarray(Image.fromarray(SRC).filter(pillow_lut.load_cube_file(str(path)))).astype(float)
    assert np.abs(by_pillow_lut - ours).max() <= 1
    assert np.abs(by_pillow_lut - dst).mean() < 2  # and it is the edit: gamma plus the channel swap


def test_fit_tells_a_colour_edit_from_a_spatial_one():
    src = Image.fromarray(SRC)
    warm = np.clip(SRC * [1.1, 1.0, 0.85], 0, 255).astype(np.uint8)
    table, f = finish.table_and_fit(src, Image.fromarray(warm))
    assert f.colour_edit and f.mean < 1.0 and fit.choose(f) == "lut"
    spatial = SRC.copy()
    spatial[60:180, 100:220] = SRC[0:120, 0:120]  # something moved
    _, f2 = finish.table_and_fit(src, Image.fromarray(spatial))
    assert not f2.colour_edit and fit.choose(f2) == "direct", f2


def test_working_size_keeps_the_aspect_on_the_models_grid():
    assert resize.working_size(6000, 4000, resize.QWEN) == (1248, 832)
    assert resize.working_size(6000, 4000, resize.KONTEXT) == (1248, 832)  # the listed size nearest 3:2
    assert resize.working_size(4000, 6000, resize.KONTEXT) == (832, 1248)
    assert resize.working_size(300, 200, resize.SD) == (296, 200)  # never enlarged, multiple of 8
    graph = {"1": {"class_type": "FluxKontextImageScale", "inputs": {}}}
    assert resize.profile_for(graph) is resize.KONTEXT
    assert resize.profile_for({"1": {"class_type": "TextEncodeQwenImageEdit", "inputs": {}}}) is resize.QWEN


def png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def test_an_input_must_decode_completely():
    good = png(Image.new("RGB", (40, 30), (1, 2, 3)))
    assert photo.check_image(good, 10**6) == "png"
    with pytest.raises(BadRequest, match="not a PNG"):
        photo.check_image(b"hello", 10**6)
    with pytest.raises(BadRequest, match="damaged or incomplete"):
        photo.check_image(b"\x89PNG\r\n\x1a\n" + b"just text after the signature" * 10, 10**6)
    with pytest.raises(BadRequest, match="damaged or incomplete"):
        photo.check_image(good[: len(good) - 30], 10**6)
    jpeg = io.BytesIO()
    Image.fromarray(SRC).save(jpeg, "JPEG")
    with pytest.raises(BadRequest, match="damaged or incomplete"):
        photo.check_image(jpeg.getvalue()[:2000], 10**6)
    with pytest.raises(ImageTooLarge, match="max_upload_mb"):
        photo.check_image(good, 10)


def bomb_png(width: int, height: int) -> bytes:
    """A valid PNG header claiming a huge size, with a tiny compressed body (a decompression bomb)."""
    import struct

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 1000))
            + chunk(b"IEND", b""))


def test_a_decompression_bomb_is_413_not_a_crash():
    with pytest.raises(ImageTooLarge, match="pixels"):
        photo.check_image(bomb_png(20000, 20000), 10**6)
    with pytest.raises(ImageTooLarge, match="pixels"):
        photo.check_image(bomb_png(100000, 100000), 10**6)  # past Pillow's own 2x guard


def test_full_resolution_lut_keeps_orientation_icc_and_format():
    img = Image.fromarray(np.repeat(np.repeat(SRC, 4, 0), 4, 1))  # 1280x960
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 CW to view
    icc = b"\0\0\0\x10fake-icc-profile"
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=95, exif=exif.tobytes(), icc_profile=icc)
    prep = finish.prepare(buf.getvalue(), resize.Profile("t", 320 * 240, 8))
    assert prep.small.size == (240, 320)  # the model sees it upright
    warm = np.clip(np.asarray(prep.small) * [1.1, 1.0, 0.85], 0, 255).astype(np.uint8)
    result = finish.finish(prep, png(Image.fromarray(warm)), "auto", None)
    # reported as shown (upright), stored as it was: the EXIF orientation still turns it
    assert result.method == "lut" and result.fmt == "jpeg" and (result.width, result.height) == (960, 1280)
    with Image.open(io.BytesIO(result.data)) as out:
        assert out.format == "JPEG" and out.size == (1280, 960)
        assert out.getexif()[0x0112] == 6 and out.info.get("icc_profile") == icc
        mean = np.asarray(out).reshape(-1, 3).mean(axis=0)
    source_mean = np.asarray(img).reshape(-1, 3).mean(axis=0)
    assert mean[0] > source_mean[0] + 5 and mean[2] < source_mean[2] - 5  # warmer
    cube = finish.finish(prep, png(Image.fromarray(warm)), "auto", "cube")
    assert cube.fmt == "cube" and cube.data.startswith(b"TITLE")
    direct = finish.finish(prep, png(Image.fromarray(warm)), "direct", "png")
    assert direct.method == "direct" and (direct.width, direct.height) == (240, 320) and direct.fit is None


def test_a_strong_map_is_right_at_the_nodes_even_when_pixels_sit_off_them():
    """Black and white moves every colour far, so a node's shift measured where its pixels sit (here all
    off the node, red 3 levels above and green 3 below) is wrong at the node unless moved there along the
    map's slope."""
    rng = np.random.default_rng(7)
    step = 255 / 32
    block = np.stack(np.meshgrid(*[np.arange(8, 20)] * 3, indexing="ij"), -1).reshape(-1, 3)  # 12^3 nodes
    nodes = block[rng.integers(0, len(block), 512 * 512)]  # about 150 pixels each, as in a photo
    src = np.clip(np.rint(nodes * step) + [3, -3, 0], 0, 255).astype(np.uint8).reshape(512, 512, 3)
    grey = lambda a: np.repeat((a @ [0.299, 0.587, 0.114])[..., None], 3, -1)  # noqa: E731
    table = lut.extract(src, np.rint(grey(src.astype(np.float64))).astype(np.uint8), robust=False)
    seen = np.unique(nodes, axis=0)
    seen = seen[((seen > 8) & (seen < 19)).all(axis=1)]  # inside the block: the slope is seen on both sides
    at_nodes = table[seen[:, 0], seen[:, 1], seen[:, 2]] * 255.0
    truth = grey(seen * step)
    error = np.abs(at_nodes - truth).mean()
    assert error <= 1.0, error  # 2.3 levels when the shift is taken where the pixels sit
