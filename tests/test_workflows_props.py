"""Property tests: hostile prompts and values reach the graph verbatim, types are kept, the template
never changes, and rendering stays fast."""

from __future__ import annotations

import copy
import json
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from linkpix.config import load_config
from linkpix.pipeline.request import parse_query
from linkpix.pipeline.resolver import Resolver
from linkpix.render.placeholders import Registry
from linkpix.render.workflows import WorkflowTemplate
from linkpix.storage.jsonstore import JsonStore

ROOT = Path(__file__).resolve().parent.parent
REGISTRY = Registry(json.loads((ROOT / "data" / "placeholders.json").read_text(encoding="utf-8")))

HOSTILE = st.sampled_from(['%model%', '%prompt%', '"', '\\', '\\"', '\n', '\r\n', '{{x}}', '${x}', '$1', '$&',
                           '%%', '%', '\x00'[:0], '😀', '👩\u200d👩\u200d👧', 'ü', '\u202e', '</script>',
                           '{"a": 1}', '["4", 0]', '%seed%%steps%', "'", '`', '\t', '%date:yyyy%'])
PROMPTS = st.lists(st.one_of(HOSTILE, st.text(max_size=20)), min_size=1, max_size=8).map("".join) \
    .filter(lambda s: s.strip() and "\x00" not in s)

TEMPLATE_GRAPH = {
    "1": {"class_type": "KSampler", "inputs": {"seed": "%seed%", "steps": "%steps%", "cfg": "%scale%",
                                               "denoise": "%denoise%", "sampler_name": "%sampler%",
                                               "positive": ["2", 0], "negative": ["3", 0], "model": ["4", 0]}},
    "2": {"class_type": "CLIPTextEncode", "inputs": {"text": "%prompt%", "clip": ["4", 1]}},
    "3": {"class_type": "CLIPTextEncode", "inputs": {"text": "%negative_prompt%", "clip": ["4", 1]}},
    "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "%model%"}},
    "5": {"class_type": "Note", "inputs": {"text": "style: %prompt% / %outfit%", "list": ["%width%", 1, 2]}},
}


@pytest.fixture(scope="module")
def template() -> WorkflowTemplate:
    return WorkflowTemplate("hostile.json", copy.deepcopy(TEMPLATE_GRAPH), REGISTRY)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(prompt=PROMPTS, negative=PROMPTS, outfit=PROMPTS, model=PROMPTS,
       steps=st.integers(1, 150), cfg=st.floats(0, 30, allow_nan=False), seed=st.integers(0, 2**64 - 1),
       width=st.integers(16, 8192))
def test_hostile_values_arrive_verbatim_with_types(template: WorkflowTemplate, prompt: str, negative: str,
                                                   outfit: str, model: str, steps: int, cfg: float, seed: int,
                                                   width: int) -> None:
    before = template.graph
    out = template.render({"prompt": prompt, "negative_prompt": negative, "outfit": outfit, "model": model,
                           "steps": steps, "cfg": cfg, "seed": seed, "denoise": 1.0, "sampler": "euler",
                           "width": width})
    wire = json.loads(json.dumps(out))  # what ComfyUI receives
    assert wire["2"]["inputs"]["text"] == prompt
    assert wire["3"]["inputs"]["text"] == negative
    assert wire["4"]["inputs"]["ckpt_name"] == model
    assert wire["5"]["inputs"]["text"] == f"style: {prompt} / {outfit}"
    assert wire["5"]["inputs"]["list"] == [width, 1, 2]
    ks = wire["1"]["inputs"]
    assert ks["steps"] == steps and type(ks["steps"]) is int
    assert ks["seed"] == seed and type(ks["seed"]) is int
    assert ks["cfg"] == cfg and type(ks["cfg"]) is float
    assert ks["positive"] == ["2", 0]
    assert template.graph == before == TEMPLATE_GRAPH  # never mutated


@settings(max_examples=60, deadline=None)
@given(prompt=PROMPTS)
def test_rendered_graphs_do_not_share_state(prompt: str) -> None:
    t = WorkflowTemplate("x.json", copy.deepcopy(TEMPLATE_GRAPH), REGISTRY)
    values = {"prompt": prompt, "model": "m", "outfit": "o"}
    a = t.render(values)
    a["1"]["inputs"]["positive"].append("junk")
    a["5"]["inputs"]["list"].append(9)
    b = t.render(values)
    assert b["1"]["inputs"]["positive"] == ["2", 0] and b["5"]["inputs"]["list"] == [1024, 1, 2]


def _resolver(project: Path) -> Resolver:
    cfg = load_config(project / "config.json", use_env=False)
    return Resolver(lambda: cfg, JsonStore(), lambda: None)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(prompt=PROMPTS)
def test_prompt_through_the_resolver_reaches_every_shipped_workflow_verbatim(project: Path, prompt: str) -> None:
    resolver = _resolver(project)
    for name, node, key in (("flux_schnell.json", "6", "text"), ("sd15.json", "6", "text"),
                            ("sdxl.json", "6", "text"), ("demo.json", "2", "text")):
        job = resolver.resolve(parse_query(prompt, {"workflow": name, "style": "none"}, "default"))
        assert json.loads(json.dumps(job.graph))[node]["inputs"][key] == prompt
        assert job.prompt == prompt


def test_rendering_is_fast(project: Path) -> None:
    resolver = _resolver(project)
    for name in resolver.workflow_names():
        template = resolver.template(name)
        values = {"prompt": "a red fox", "seed": 1, "model": "m", "image": "example.png"}
        started = time.perf_counter()
        for _ in range(500):
            template.render(values)
        assert (time.perf_counter() - started) / 500 < 0.001, name
    req = parse_query("a red fox", {"style": "kawaii", "width": "768"}, "default")
    started = time.perf_counter()
    for _ in range(300):
        resolver.resolve(req)
    assert (time.perf_counter() - started) / 300 < 0.003
