"""Property tests for hostile request input (issue 13 item 6): any text, including lone surrogates and
NULs, in any field, and JSON nested to any depth, gives a request or a 400 with a message, never another
exception (which the API would answer as a 500)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import RUNTIME_FILES
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from linkpix.errors import BadRequest
from linkpix.pipeline.request import parse_json, parse_query
from linkpix.web import create_app

# All of Unicode's code points, surrogates (category Cs) included: JSON can carry them as "\ud800".
ANY_TEXT = st.text(st.characters(codec=None, categories=None), max_size=40)
SURROGATE = st.integers(0xD800, 0xDFFF).map(chr)
WITH_SURROGATE = st.tuples(ANY_TEXT, SURROGATE, ANY_TEXT).map("".join)
FIELDS = ("prompt", "negative", "style", "workflow", "user", "format", "seed", "sampler", "my_text")


def _valid_utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
        return True
    except UnicodeEncodeError:
        return False


@pytest.mark.slow
@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(FIELDS), ANY_TEXT, min_size=1))
def test_any_text_in_any_field_is_a_request_or_a_400(body):
    try:
        req = parse_json(body, "default")
    except BadRequest as exc:
        assert exc.message and exc.status == 400
        return
    for value in (req.prompt, *[v for v in req.params.values() if isinstance(v, str)]):
        assert _valid_utf8(value) and "\x00" not in value


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(("prompt", "negative", "my_text")), WITH_SURROGATE)
def test_a_lone_surrogate_is_always_refused(field, text):
    body = {"prompt": "fox", field: text}
    with pytest.raises(BadRequest, match="surrogate|NUL"):
        parse_json(body, "default")
    query = {field: text} if field != "prompt" else {}
    with pytest.raises(BadRequest, match="surrogate|NUL"):
        parse_query(text if field == "prompt" else "fox", query, "default")


@pytest.fixture(scope="module")
def client(tmp_path_factory) -> Iterator:
    """The app in process: these bodies are refused before anything needs ComfyUI."""
    root = Path(__file__).resolve().parent.parent
    folder = tmp_path_factory.mktemp("props")
    for name in ("data", "workflows"):
        shutil.copytree(root / name, folder / name, ignore=RUNTIME_FILES)
    shutil.copy(root / "config.json", folder / "config.json")
    app = create_app(folder / "config.json", use_env=False, overrides={"comfyui_url": "http://127.0.0.1:9"})
    try:
        yield app.test_client()
    finally:
        app.extensions["linkpix"].close()


def _nested(depth: int, leaf: str) -> str:
    return "[" * depth + leaf + "]" * depth


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(depth=st.integers(65, 5000), path=st.sampled_from(["/generate", "/uploads"]),
       where=st.sampled_from(["prompt", "image", "params", "webhook_url"]))
def test_json_nested_deeper_than_the_limit_is_a_400(client, depth, path, where):
    raw = '{"' + where + '": ' + _nested(depth, "1") + "}"
    r = client.post(path, data=raw, content_type="application/json")
    assert r.status_code == 400, r.get_data(as_text=True)
    assert "nested" in r.get_json()["message"]


# A high surrogate escaped right before a low one is a valid pair in JSON (\\ud800\\udc00 is U+10000): not lone.
LONE_IN_JSON = WITH_SURROGATE.filter(lambda s: not _valid_utf8(json.loads(json.dumps(s))))


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(field=st.sampled_from(["prompt", "negative", "webhook_secret"]), text=LONE_IN_JSON)
def test_lone_surrogates_sent_as_json_escapes_are_a_400(client, field, text):
    body = {"prompt": "fox", "webhook_url": "http://93.184.215.14/hook", field: text}
    raw = json.dumps(body)  # ensure_ascii: the surrogate travels as a \\udXXX escape, as an attacker sends it
    r = client.post("/generate", data=raw, content_type="application/json")
    assert r.status_code == 400, r.get_data(as_text=True)
    assert "surrogate" in r.get_json()["message"] or "NUL" in r.get_json()["message"]
