"""What /openapi.json says beyond the views' docstrings: this instance's names, and the links between operations.

The names (web/openapinames.py) make a well-formed but unknown workflow or style a request the document
already calls invalid; the links (web/openapilinks.py) let a client walk create -> read -> cancel.
"""

from __future__ import annotations

import base64
import io
import re
import shutil
from pathlib import Path

import requests
from PIL import Image


def _schema(spec: dict, name: str) -> dict:
    return spec["components"]["schemas"][name]


def _param(spec: dict, path: str, method: str, name: str) -> dict:
    return next(p for p in spec["paths"][path][method]["parameters"] if p["name"] == name)


def _resolve(spec: dict, ref: str) -> dict:
    node = spec
    for part in ref.removeprefix("#/").split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def test_the_document_lists_this_instances_workflows_and_styles(api, project):
    spec = api.get("/openapi.json").json()
    workflows = _schema(spec, "GenerateBody")["properties"]["workflow"]["enum"]
    assert {"demo.json", "demo", ""} <= set(workflows) and None in workflows  # null is "not given" in JSON
    edit = _schema(spec, "EditJson")["properties"]["workflow"]["enum"]
    assert "sd15_img2img.json" in edit and "demo.json" not in edit  # /edit takes only image workflows
    style = _param(spec, "/prompt/{text}", "get", "style")["schema"]["pattern"]
    assert re.match(style, "anime, kawaii") and re.match(style, "") and not re.match(style, "nope")
    for name, answer in (("anime", 200), ("nope", 400)):  # what the pattern says is what the link does
        r = api.get(f"/prompt/a%20fox?style={name}&width=64&height=64")
        assert r.status_code == answer, r.text[:200]

    # a new workflow file is in the next document
    shutil.copy(project / "workflows" / "demo.json", project / "workflows" / "brand_new.json")
    again = api.get("/openapi.json").json()
    assert "brand_new.json" in _schema(again, "GenerateBody")["properties"]["workflow"]["enum"]


def test_links_lead_from_what_is_made_to_where_it_is_followed(api):
    spec = api.get("/openapi.json").json()
    links = spec["paths"]["/generate"]["post"]["responses"]["202"]["links"]
    assert {"GetJob", "FollowJob", "CancelJob"} <= set(links)
    for link in links.values():
        assert _resolve(spec, link["operationRef"])["responses"]  # points at an operation of this document
    # follow the link by hand: the job id of the 202 opens GET /jobs/{job_id}
    accepted = requests.post(api.url + "/generate", json={"prompt": "a linked fox", "width": 64, "height": 64},
                             timeout=30)
    assert accepted.status_code == 202
    job_id = accepted.json()[links["GetJob"]["parameters"]["job_id"].removeprefix("$response.body#/")]
    assert api.get(f"/jobs/{job_id}").json()["job_id"] == job_id
    upload = spec["paths"]["/uploads"]["post"]["responses"]["201"]["links"]["EditUpload"]
    assert upload["requestBody"]["image"] == "$response.body#/id"


def test_a_refusal_the_document_cannot_foretell_names_its_rule(api):
    """The rules no schema states (linkpix.errors.RULES) are the ones docs/api.md lists, and a refusal that
    enforces one names it where a client (and the fuzzing run) can read it; a refusal the schema does say
    names none."""
    from linkpix.errors import RULES

    table = (Path(__file__).resolve().parent.parent / "docs" / "api.md").read_text(encoding="utf-8")
    section = table.split("## Rules no schema states", 1)[1].split("\n## ", 1)[0]
    assert set(re.findall(r"^\| `([a-z_]+)` \|", section, re.MULTILINE)) == set(RULES)

    spec = api.get("/openapi.json").json()
    side = _schema(spec, "GenerateBody")["properties"]["width"]["oneOf"][0]
    assert side["maximum"] == 8192 and 8192 * 8192 > 4_194_304  # each side valid, the product is not

    def generate(**body: object) -> requests.Response:
        return requests.post(api.url + "/generate", json={"prompt": "a fox", **body}, timeout=30)

    r = generate(width=8192, height=8192)
    assert r.status_code == 400 and r.json()["details"]["rule"] == "max_pixels", r.text[:300]
    picture = io.BytesIO()
    Image.new("RGB", (32, 32), (200, 30, 30)).save(picture, "PNG")
    r = generate(workflow="demo", images=[base64.b64encode(picture.getvalue()).decode()])
    assert r.status_code == 400 and r.json()["details"]["rule"] == "image_input", r.text[:300]
    r = generate(webhook_url="http://no-such-host.invalid/hook")
    assert r.status_code == 400 and r.json()["details"]["rule"] == "webhook_host", r.text[:300]
    r = generate(webhook_secret="s3cret")  # the schema says this one (dependencies), so no rule
    assert r.status_code == 400 and "rule" not in (r.json()["details"] or {}), r.text[:300]
