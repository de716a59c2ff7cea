"""Error summaries from real ComfyUI 0.3.64 answers: validation (400) and run-time failures."""

from __future__ import annotations

import json

import pytest
from conftest import CAPTURES

from linkpix.comfy.failures import raise_for_history, summarise_node_errors, workflow_rejected
from linkpix.errors import ExecutionFailed, Interrupted, WorkflowRejected


def _capture(name: str) -> dict:
    return json.loads((CAPTURES / name).read_text())


@pytest.mark.parametrize("name, expected", [
    ("prompt_error_bad_combo.json",
     "ComfyUI refused the workflow: node 3 (ImageScale): Value not in list: upscale_method: "
     "'not-a-method' not in ['nearest-exact', 'bilinear', 'area', 'bicubic', 'lanczos']"),
    ("prompt_error_out_of_range.json",
     "ComfyUI refused the workflow: node 1 (EmptyImage): Value 99999 bigger than max of 16384: height; "
     "Value 0 smaller than min of 1: width"),
    ("prompt_error_missing_input.json",
     "ComfyUI refused the workflow: node 1 (EmptyImage): Required input is missing: width"),
    ("prompt_error_bad_link.json",
     "ComfyUI refused the workflow: node 2 (SaveImage): Exception when validating node: '99'"),
    ("prompt_error_unknown_node.json",
     "ComfyUI refused the workflow: Cannot execute because node NoSuchNodeType does not exist. "
     "(Node ID '#1')"),
    ("prompt_error_no_output.json", "ComfyUI refused the workflow: Prompt has no outputs"),
    ("prompt_error_no_prompt_key.json", "ComfyUI refused the workflow: No prompt provided"),
])
def test_rejection_message_summarises_node_errors(name, expected):
    body = _capture(name)["body"]
    error = workflow_rejected(body, 400)
    assert isinstance(error, WorkflowRejected) and error.status == 422
    assert error.message == expected
    assert error.node_errors == body["node_errors"]
    assert error.details["comfyui_error"] == body["error"]


def test_the_issue_example():
    node_errors = {"3": {"class_type": "KSampler", "dependent_outputs": ["9"], "errors": [{
        "type": "value_not_in_list", "message": "Value not in list",
        "details": "sampler_name: 'foo' not in (list of length 42)", "extra_info": {}}]}}
    assert summarise_node_errors(node_errors) == \
        "node 3 (KSampler): Value not in list: sampler_name: 'foo' not in (list of length 42)"


def test_rejection_with_a_body_that_is_not_json():
    error = workflow_rejected("500 Internal Server Error", 400)
    assert error.message == "ComfyUI refused the workflow: 500 Internal Server Error"
    assert error.node_errors == {}


def test_very_long_details_are_clipped():
    node_errors = {"1": {"class_type": "X", "errors": [{"message": "m", "details": "d" * 5000}]}}
    assert len(summarise_node_errors(node_errors)) < 400


def test_execution_error_in_history_becomes_execution_failed():
    entry = _capture("history_execution_error.json")["aa40b625-1bcc-4c0b-9c16-6009896e20ea"]
    with pytest.raises(ExecutionFailed) as caught:
        raise_for_history(entry, "aa40b625-1bcc-4c0b-9c16-6009896e20ea")
    error = caught.value
    assert (error.node_id, error.node_type, error.exception_type) == \
        ("2", "LoadImage", "PIL.UnidentifiedImageError")
    assert error.message.endswith("node 2 (LoadImage): cannot identify image file "
                                  "'/srv/comfyui/input/capture_tests/corrupt_not_really.png'")
    assert "\n" not in error.message


def test_interrupted_history_becomes_interrupted():
    history = _capture("history_interrupted.json")
    prompt_id, entry = next(iter(history.items()))
    with pytest.raises(Interrupted, match="interrupted prompt .* at node 4 \\(ImageBlur\\)"):
        raise_for_history(entry, prompt_id)


@pytest.mark.parametrize("name", ["history_success.json", "history_cached.json"])
def test_successful_history_raises_nothing(name):
    prompt_id, entry = next(iter(_capture(name).items()))
    assert raise_for_history(entry, prompt_id) is None


def test_error_status_without_a_reason_still_fails():
    with pytest.raises(ExecutionFailed, match="without saying why"):
        raise_for_history({"status": {"status_str": "error", "messages": []}}, "p")
