"""What /openapi.json says beyond the views' docstrings: this instance's names, and the links between operations.

The names (web/openapinames.py) make a well-formed but unknown workflow or style a request the document
already calls invalid; the links (web/openapilinks.py) let a client walk create -> read -> cancel.
"""

from __future__ import annotations

import re
import shutil

import requests


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
