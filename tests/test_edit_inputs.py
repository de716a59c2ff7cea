"""Binding an input image and a mask: LoadImageMask (detected), a `%mask%` placeholder, the image's alpha
(LoadImage's MASK output), a resized mask, and what each workflow says it needs."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from PIL import Image
from test_resolver import make

from linkpix.errors import BadRequest
from linkpix.model import GenerationRequest, make_input_image


def png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


IMAGE = make_input_image(png(Image.new("RGB", (64, 48), (10, 200, 30))))
MASK = make_input_image(png(Image.new("L", (32, 24), 255)), 0, parameter="mask")


def with_mask_node(project: Path, mask_value: str = "mask.png") -> None:
    graph = json.loads((project / "workflows" / "sd15_inpaint.json").read_text())
    graph["30"] = {"class_type": "LoadImageMask", "inputs": {"image": mask_value, "channel": "red"}}
    graph["26"]["inputs"]["mask"] = ["30", 0]
    (project / "workflows" / "inpaint_file.json").write_text(json.dumps(graph))


@pytest.mark.parametrize("mask_value", ["mask.png", "%mask%"])
def test_mask_goes_to_loadimagemask_resized_to_the_image(project: Path, mask_value: str) -> None:
    with_mask_node(project, mask_value)
    r = make(project)
    assert r.template("inpaint_file.json").needs() == {"image": True, "mask": "file"}
    job = r.resolve(GenerationRequest(prompt="x", workflow="inpaint_file.json", input_images=(IMAGE,), mask=MASK))
    image, mask = job.uploads
    assert image == IMAGE and job.graph["20"]["inputs"]["image"] == IMAGE.name
    assert job.graph["30"]["inputs"]["image"] == mask.name
    with Image.open(io.BytesIO(mask.data)) as m:
        assert m.size == (64, 48) and m.getpixel((5, 5)) == (255, 255, 255, 0)  # red = change, alpha inverted
    assert job.notes == ("the mask was resized to the image's 64x48",)


def test_mask_goes_into_the_alpha_of_an_image_whose_mask_output_is_used(project: Path) -> None:
    r = make(project)
    assert r.template("sd15_inpaint.json").needs() == {"image": True, "mask": "alpha"}
    same_size = make_input_image(png(Image.new("L", (64, 48), 0)), 0, parameter="mask")
    job = r.resolve(GenerationRequest(prompt="x", workflow="sd15_inpaint.json", input_images=(IMAGE,),
                                      mask=same_size))
    (combined,) = job.uploads
    with Image.open(io.BytesIO(combined.data)) as img:
        assert img.mode == "RGBA" and img.getpixel((3, 3)) == (10, 200, 30, 255)  # black mask: keep
    assert job.graph["20"]["inputs"]["image"] == combined.name and job.notes == ()


def test_a_mask_needs_a_mask_input_and_an_image(project: Path) -> None:
    r = make(project)
    with pytest.raises(BadRequest, match="no mask input.*sd15_inpaint.json"):
        r.resolve(GenerationRequest(prompt="x", workflow="sd15_img2img.json", input_images=(IMAGE,), mask=MASK))
    with pytest.raises(BadRequest, match="a mask needs an image"):
        r.resolve(GenerationRequest(prompt="x", workflow="sd15_inpaint.json", mask=MASK))
