"""Hostile and awkward input, refused at stage 1 (or by the resolver's limits) with a 400 that says what
is wrong: lone surrogates, NULs, over-long free text, deep JSON, repeated query parameters, numbers
given as text, and the JSON API's own messages (issue 13 items 4 and 6, issue 9 item 6)."""

from __future__ import annotations

import json

import pytest
import requests

from linkpix.errors import BadRequest
from linkpix.pipeline.request import parse_json, parse_query


def _post(server, path: str, raw: str, **headers: str) -> requests.Response:
    return requests.post(server.url + path, data=raw.encode(),
                         headers={"Content-Type": "application/json", **headers}, timeout=30)


# ------------------------------------------------------------------------------- stage 1, in process
@pytest.mark.parametrize("field", ["prompt", "negative"])
def test_a_lone_surrogate_is_a_400_naming_the_field(field):
    body = {"prompt": "a fox", field: "bad \ud800 text"}
    with pytest.raises(BadRequest) as err:
        parse_json(body, "default")
    assert "surrogate" in err.value.message
    assert err.value.details["parameter"] in (field, "negative_prompt")


def test_negative_has_the_prompts_nul_rule():
    with pytest.raises(BadRequest) as err:
        parse_query("fox", {"negative": "a\x00b"}, "default")
    assert "NUL" in err.value.message and err.value.details["parameter"] == "negative_prompt"


def test_a_missing_prompt_says_missing_and_an_empty_one_fits_json():
    with pytest.raises(BadRequest) as err:
        parse_json({}, "default")
    assert "missing" in err.value.message and "prompt" in err.value.message
    with pytest.raises(BadRequest) as err:
        parse_json({"prompt": "  "}, "default")
    assert "URL" not in err.value.message and '"prompt"' in err.value.message


@pytest.mark.parametrize("seed", ["42", "42.0", 42, 42.0])
def test_a_seed_given_as_text_is_the_number(seed):
    assert parse_json({"prompt": "x", "seed": seed}, "default").seed == 42


# ------------------------------------------------------------------------------- over real sockets
def test_lone_surrogates_in_generate_are_400_not_500(jobs):
    for field in ("prompt", "negative", "webhook_secret"):
        raw = '{"prompt": "fox", "webhook_url": "http://93.184.215.14/h", "' + field + '": "x\\ud800y"}'
        r = _post(jobs, "/generate", raw)
        assert r.status_code == 400, (field, r.status_code, r.text)
        assert "surrogate" in r.json()["message"], r.json()


@pytest.mark.parametrize("path", ["/generate", "/uploads"])
def test_deeply_nested_json_is_a_400(jobs, path):
    raw = '{"prompt": ' + "[" * 1100 + "]" * 1100 + "}"
    r = _post(jobs, path, raw)
    assert r.status_code == 400, r.text
    assert "nested" in r.json()["message"]


@pytest.mark.slow
def test_json_api_messages(jobs, simulator):
    r = jobs.post("/generate", json={})
    assert r.status_code == 400 and "missing" in r.json()["message"]
    r = jobs.post("/generate", json={"prompt": ""})
    assert r.status_code == 400 and "/prompt/" not in r.json()["message"]
    r = jobs.post("/generate", json={"prompt": "fox", "width": 64, "height": 64, "frobnicate": 1,
                                     "wibble": "x"})
    assert r.status_code == 202, r.text
    assert sorted(r.json()["ignored"]) == ["frobnicate", "wibble"]
    r = jobs.post("/generate", json={"prompt": "fox", "width": "64", "height": "64.0", "image_count": "2",
                                     "seed": "7"})
    assert r.status_code == 202, r.text
    job = jobs.wait_for(r.json()["job_id"])
    assert [i["seed"] for i in job["images"]] == [7, 8] and job["images"][0]["width"] == 64
    assert simulator.prompts_received == 3


def test_free_text_parameters_have_the_prompts_limit(project, simulator):
    from jobs_support import JobsServer

    server = JobsServer(project, simulator.url, max_prompt_chars=100)
    try:
        r = server.post("/generate", json={"prompt": "fox", "negative": "n" * 101})
        assert r.status_code == 400 and "100" in r.json()["message"], r.text
        assert r.json()["details"]["parameter"] == "negative_prompt"
        r = server.get("/prompt/fox?negative=" + "n" * 101)
        assert r.status_code == 400 and "max_prompt_chars" in r.json()["message"]
        r = server.post("/generate", json={"prompt": "fox", "params": {"my_text": "t" * 101}})
        assert r.status_code == 400 and r.json()["details"]["parameter"] == "my_text"
        styles = json.loads((project / "data" / "styles.json").read_text())
        styles["wordy"] = {"pre": "p" * 60, "post": "q" * 60}
        (project / "data" / "styles.json").write_text(json.dumps(styles))
        r = server.get("/prompt/fox?style=wordy&width=64&height=64")
        assert r.status_code == 400 and "wordy" in r.json()["message"], r.text
        assert server.get("/prompt/fox?negative=" + "n" * 100 + "&width=64&height=64").status_code == 200
        assert simulator.prompts_received == 1
    finally:
        server.close()


@pytest.mark.parametrize("path", ["/prompt/fox?width=512&width=768", "/jobs?state=queued&state=failed",
                                  "/api/requests?limit=1&limit=2"])
def test_a_repeated_query_parameter_is_a_400_naming_it(jobs, path):
    r = jobs.get(path)
    assert r.status_code == 400, r.text
    name = path.split("?")[1].split("=")[0]
    assert name in r.json()["message"] and r.json()["details"]["parameter"] == name
