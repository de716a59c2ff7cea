"""Schemathesis against the running API's /openapi.json (issue 15 item 5, issue 20 item 6).

Every documented operation is called with cases Schemathesis draws from the description (valid ones and, in
its negative mode, invalid ones) on a real waitress server talking to the simulator, and every answer goes
through every check Schemathesis has: no 5xx, only documented status codes, content types, headers and
bodies, a schema-valid request accepted and a schema-violating one refused. A second run walks the document's
links (create -> read -> cancel/delete) as a state machine. Three answers the document foretells are taught
to the checks, each narrowly: a 400/422 that names one of the documented rules no schema can state
(linkpix.errors.RULES, docs/api.md#rules-no-schema-states), `/ws`'s 101 (the upgrade's success), and a
multipart field whose "wrong type" is, as sent, text the field takes. The runs are bounded
(`LINKPIX_FUZZ_EXAMPLES` cases per operation and mode, `LINKPIX_FUZZ_STATEFUL` state-machine runs;
`LINKPIX_FUZZ_ONLY="POST /edit,GET /ws"` limits the first to some operations) and print their figures.
"""

from __future__ import annotations

import base64
import io
import json
import os
import shutil
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import requests
import schemathesis
from fronts_support import FrontServer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from PIL import Image
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import AcceptedNegativeData
from schemathesis.core.parameters import ParameterLocation
from schemathesis.generation import GenerationMode
from schemathesis.openapi.checks import RejectedPositiveData
from schemathesis.specs.openapi.checks import (
    negative_data_rejection,
    positive_data_acceptance,
)
from support import ApiServer

from linkpix.errors import RULES
from linkpix.simulator import SimulatorServer

# Slow (docs/testing.md): the fuzzing run: thousands of cases against a running API.
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
FUZZ_EXAMPLES = int(os.environ.get("LINKPIX_FUZZ_EXAMPLES", "12"))


def _picture(kind: str) -> st.SearchStrategy[bytes]:
    """Small real pictures of one kind: what an image part or field must hold (no JSON Schema keyword can say
    that bytes decode as an image, so the document names the kinds and this draws them)."""
    def encode(size: tuple[int, int], colour: tuple[int, int, int]) -> bytes:
        out = io.BytesIO()
        Image.new("RGB", size, colour).save(out, kind)
        return out.getvalue()
    return st.builds(encode, st.tuples(st.integers(16, 64), st.integers(16, 64)),
                     st.tuples(*[st.integers(0, 255)] * 3))


PICTURES = {"image/png": "PNG", "image/jpeg": "JPEG", "image/webp": "WEBP", "image/gif": "GIF"}
for _media, _kind in PICTURES.items():
    schemathesis.openapi.media_type(_media, _picture(_kind))
_BASE64_PICTURE = st.sampled_from(list(PICTURES.values())).flatmap(_picture).map(lambda b: base64.b64encode(b).decode())
schemathesis.openapi.format("image-base64", _BASE64_PICTURE)
schemathesis.openapi.format("image-base64-or-upload-id", _BASE64_PICTURE)

def _upgraded(response: Any, case: Any) -> bool:
    """/ws answering 101 Switching Protocols: the upgrade's success (the document says so), not an error."""
    return response.status_code == 101 and case.operation.label == "GET /ws"


def not_a_server_error_but_upgrades(ctx: Any, response: Any, case: Any) -> bool | None:
    """Schemathesis' "no 5xx", which takes any status outside 2xx-4xx for an error: /ws's 101 is not one."""
    return None if _upgraded(response, case) else not_a_server_error(ctx, response, case)


@pytest.fixture(scope="module")
def fuzz_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    """LinkPix as shipped (its config, workflows and styles) on a loopback port, with the simulator."""
    tmp = tmp_path_factory.mktemp("fuzz")
    project = tmp / "project"
    project.mkdir()
    for name in ("data", "workflows"):
        shutil.copytree(ROOT / name, project / name,
                        ignore=shutil.ignore_patterns("*.lock", "jobs.sqlite3*", "uploads", "originals"))
    shutil.copy(ROOT / "config.json", project / "config.json")
    (project / "cache").mkdir()
    sim = SimulatorServer(host="127.0.0.1", port=0, root=tmp / "comfyui", step_delay=0.0)
    sim.start()
    # Event streams end with their job or after events_max_seconds: keep the unknown-job ones short.
    # FrontServer: served as app.py serves it, so /ws upgrades (101) as it does for users.
    server = FrontServer(project, sim.url, events_max_seconds=2.0, events_heartbeat=1.0)
    try:
        yield server
    finally:
        server.close()
        sim.stop()


def _report(figures: dict[str, Any]) -> str:
    line = (f"schemathesis: {len(figures['operations'])} operations, {figures['cases']} cases, "
            f"{figures['failures']} failures")
    if figures["failed"]:
        line += " (" + ", ".join(sorted(set(figures["failed"]))) + ")"
    return line


@pytest.mark.timeout(900)
def test_every_operation_keeps_its_documented_contract(fuzz_api: ApiServer,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    """Every check Schemathesis has on every operation (its strict mode), driven here rather than by its pytest
    plugin, which reaches into pytest's internals and broke with pytest 9.2. It prints the figures, per check
    when something fails, and the refusals that named a documented rule."""
    schema = schemathesis.openapi.from_url(fuzz_api.url + "/openapi.json")
    DOCUMENT.update(requests.get(fuzz_api.url + "/openapi.json", timeout=30).json())
    figures: dict[str, Any] = {"operations": set(), "cases": 0, "failures": 0, "failed": [], "by_check": {}}
    operations = [result.ok() for result in schema.get_all_operations()]
    operations = [operation for operation in operations if not ONLY or operation.label in ONLY]
    assert ONLY or len(operations) >= 40, "the OpenAPI document lost its operations"
    RULES_SEEN.clear()
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            _fuzz_all_checks(operation, mode, figures)
    with capsys.disabled():
        print("\n" + _report(figures) + f"; {figures.get('backend_refused', 0)} graphs refused by the backend "
              f"({', '.join(sorted(GRAPH_OPERATIONS))})")
        for check, labels in sorted(figures["by_check"].items()):
            print(f"  {check}: {len(set(labels))} operations: {', '.join(sorted(set(labels)))}")
        for where, example in sorted(figures.get("examples", {}).items()):
            print(f"    {where}: {example}")
        print("  refusals of valid requests that named a documented rule: "
              + (", ".join(f"{rule} {n}" for rule, n in sorted(RULES_SEEN.items())) or "none"))
    assert figures["failures"] == 0, _report(figures)
    assert len(figures["operations"]) == len(operations), "an operation drew no case at all"


def _rule_named(response: Any) -> str | None:
    """The documented rule (linkpix.errors.RULES) a refusal names, in whichever error shape it speaks: LinkPix's and
    v2's `details.rule`, A1111's `rule`, OpenAI's `error.code`, ComfyUI's `error.extra_info.rule`."""
    try:
        body = response.json()
    except ValueError:
        return None
    if not isinstance(body, dict):
        return None
    error = body.get("error") if isinstance(body.get("error"), dict) else {}
    for place in (body.get("details"), error.get("details"), error.get("extra_info")):
        if isinstance(place, dict) and place.get("rule") in RULES:
            return place["rule"]
    for name in (body.get("rule"), error.get("code")):
        if name in RULES:
            return name
    return None


def positive_data_within_rules(ctx: Any, response: Any, case: Any) -> bool | None:
    """Schemathesis' "a schema-valid request is accepted", except for two answers the document foretells: a 400/422
    naming one of the documented rules no schema can state (linkpix.errors.RULES: width x height <= max_pixels,
    names the backend has, ...), and `/ws`'s 101, the upgrade's success. Any other refusal still fails."""
    try:
        return positive_data_acceptance(ctx, response, case)
    except RejectedPositiveData:
        rule = _rule_named(response) if response.status_code in (400, 422) else None
        if rule is not None:
            RULES_SEEN[rule] += 1
            return None
        if _upgraded(response, case):
            return None
        raise


def _form_text(value: Any) -> str:
    """What a value becomes as a multipart field: text (Schemathesis sends false as `false`, None as `null`, an
    object as its JSON)."""
    return json.dumps(value) if value is None or isinstance(value, bool | dict) else str(value)


def _sent_as_valid_text(case: Any) -> bool:
    """Whether every mutation of a negative multipart case only changed fields to values whose text, as sent, the
    fields' schemas take: a multipart field is text, so `false` (or `null`) and the string "false" are one request."""
    data = getattr(getattr(case, "meta", None), "phase", None)
    mutations = getattr(getattr(data, "data", None), "mutations", None)
    if not mutations or not str(case.media_type or "").startswith("multipart/") or not isinstance(case.body, dict):
        return False
    form = DOCUMENT["paths"][case.operation.path][case.method.lower()]["requestBody"]["content"][case.media_type]
    schema = form["schema"]
    if "$ref" in schema:
        schema = DOCUMENT["components"]["schemas"][schema["$ref"].rpartition("/")[2]]
    for mutation in mutations:
        pointer = mutation.schema_pointer.split("/")
        if len(pointer) < 3 or pointer[1] != "properties" or mutation.parameter_location is not ParameterLocation.BODY:
            return False
        name = pointer[2]
        value = case.body.get(name)
        field = schema.get("properties", {}).get(name)
        if value in ([], {}) and name not in schema.get("required", []):
            continue  # an empty list or object sends no part at all: the field was not given
        if isinstance(value, list) and len(value) == 1:
            value = value[0]  # a list of one is one part, the same as that one value
        if field is None:
            return False
        # a list is one part per item, each sent as text (a nested list or object as its text too)
        sent = [_form_text(item) for item in value] if isinstance(value, list) else _form_text(value)
        if not jsonschema.Draft4Validator({**field, "components": DOCUMENT["components"]}).is_valid(sent):
            return False
    return True


def negative_data_refused_as_sent(ctx: Any, response: Any, case: Any) -> bool | None:
    """Schemathesis' "a schema-violating request is refused", except a multipart case whose violation does not
    survive the wire (`_sent_as_valid_text`); a violation that does is still a failure."""
    try:
        return negative_data_rejection(ctx, response, case)
    except AcceptedNegativeData:
        if _sent_as_valid_text(case):
            return None
        raise


DOCUMENT: dict[str, Any] = {}  # the served /openapi.json, for _sent_as_valid_text
RULES_SEEN: Counter[str] = Counter()  # refusals of schema-valid requests that named a rule, by rule
STRICT = {"excluded_checks": [positive_data_acceptance, not_a_server_error, negative_data_rejection],
          "additional_checks": [positive_data_within_rules, not_a_server_error_but_upgrades,
                                negative_data_refused_as_sent]}
ONLY = {label for label in os.environ.get("LINKPIX_FUZZ_ONLY", "").split(",") if label}  # "POST /edit,GET /ws"


# Operations whose valid requests no schema can list: a graph is valid when its class types and inputs are the
# backend's (its /object_info, which changes with the custom nodes installed). A schema-valid graph the backend
# refuses (400 ComfyUI's shape, 422 v2's) is counted apart ("backend-refused"), not as a failure; every other
# check still applies to them.
GRAPH_OPERATIONS = {"POST /prompt", "POST /api/v2/jobs"}


def _backend_refused(label: str, mode: GenerationMode, exc: BaseException) -> bool:
    failures = getattr(exc, "exceptions", [exc])
    return (label in GRAPH_OPERATIONS and mode is GenerationMode.POSITIVE
            and all(type(f).__name__ == "RejectedPositiveData" and getattr(f, "status_code", 0) in (400, 422)
                    for f in failures))


def _fuzz_all_checks(operation: Any, mode: GenerationMode, figures: dict[str, Any]) -> None:
    label = operation.label

    @settings(max_examples=FUZZ_EXAMPLES, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    @given(case=operation.as_strategy(generation_mode=mode))
    def run(case: Any) -> None:
        figures["operations"].add(label)
        figures["cases"] += 1
        try:
            case.call_and_validate(timeout=30, **STRICT)  # every check Schemathesis has, the rules allowed for
        except BaseException as exc:
            if _backend_refused(label, mode, exc):
                figures["backend_refused"] = figures.get("backend_refused", 0) + 1
                return
            figures["failures"] += 1
            figures["failed"].append(label)
            for failure in getattr(exc, "exceptions", [exc]):
                name = getattr(failure, "title", type(failure).__name__)
                figures["by_check"].setdefault(str(name), []).append(f"{label} ({mode.value})")
            figures.setdefault("examples", {}).setdefault(f"{label} ({mode.value})", " ".join(str(exc).split())[:1500])
            raise

    try:
        run()
    except Unsatisfiable:
        if mode is GenerationMode.POSITIVE:  # every operation must have valid requests (some have no invalid ones)
            figures["failures"] += 1
            figures["failed"].append(f"{label} (no valid case)")
    except KeyboardInterrupt:
        raise
    except BaseException:  # noqa: BLE001 - Schemathesis' FailureGroup; counted above, the figures are the result
        pass


STATEFUL_EXAMPLES = int(os.environ.get("LINKPIX_FUZZ_STATEFUL", "8"))


@pytest.mark.timeout(900)
def test_stateful_links_keep_the_contract(fuzz_api: ApiServer, capsys: pytest.CaptureFixture[str]) -> None:
    """Schemathesis' state machine over the document's links (web/openapilinks.py): sequences such as
    POST /generate -> GET /jobs/{id} -> DELETE /jobs/{id}, POST /uploads -> GET /prompt/..?image=<id>,
    POST /api/v2/jobs -> cancel, PUT a character -> GET it -> DELETE it; every answer checked by every check."""
    schema = schemathesis.openapi.from_url(fuzz_api.url + "/openapi.json")
    DOCUMENT.update(requests.get(fuzz_api.url + "/openapi.json", timeout=30).json())
    figures: dict[str, Any] = {"steps": 0, "linked": 0, "operations": set(), "failures": []}

    class Machine(schema.as_state_machine()):  # type: ignore[misc]
        def before_call(self, case: Any) -> None:
            """A link carries a body but no media type, and Schemathesis may send a linked body in any of the
            operation's: the upload id that EditUpload puts in /edit's `image` is a JSON body's field (in
            multipart, `image` is the picture's file part), so a linked body goes as JSON."""
            super().before_call(case)
            if (case.operation.label == "POST /edit" and isinstance(case.body, dict)
                    and str(case.body.get("image", "")).startswith("linkpix_")):
                case.media_type = "application/json"

        def validate_response(self, response: Any, case: Any, additional_checks: Any = None, **kwargs: Any) -> None:
            figures["steps"] += 1
            figures["operations"].add(case.operation.label)
            try:
                case.validate_response(response, additional_checks=[*(additional_checks or []),
                                                                    *STRICT["additional_checks"]],
                                       excluded_checks=STRICT["excluded_checks"], transport_kwargs=kwargs or None,
                                       recorder=getattr(self, "recorder", None))
            except BaseException as exc:
                if _backend_refused(case.operation.label, GenerationMode.POSITIVE, exc):
                    figures["backend_refused"] = figures.get("backend_refused", 0) + 1
                    return
                figures["failures"].append(f"{case.operation.label}: {' '.join(str(exc).split())[:3000]}")
                raise

    try:
        Machine.run(settings=settings(max_examples=STATEFUL_EXAMPLES, stateful_step_count=6, deadline=None,
                                      derandomize=True, database=None, suppress_health_check=list(HealthCheck)))
    finally:
        with capsys.disabled():
            print(f"\nschemathesis stateful: {figures['steps']} steps over {len(figures['operations'])} operations, "
                  f"{len(figures['failures'])} failures; {figures.get('backend_refused', 0)} graphs refused by "
                  "the backend")
            for failure in figures["failures"][:10]:
                print("  " + failure)
