"""Find where the parameters go in a workflow exported unchanged from ComfyUI, by class type.

A person should be able to drop an "Export (API)" file into `workflows/` and have `?seed=`, `?steps=`,
`?width=`... just work. The prompt is the tricky one: there are usually two text encoders and only the
graph says which is positive, so we start at the sampler's `positive`/`negative` inputs and follow the
links upstream, through conditioning nodes (FluxGuidance, ConditioningCombine, ControlNetApply...) and,
for SamplerCustomAdvanced, through the guider (BasicGuider, CFGGuider, DualCFGGuider...), to the text
encoders.

Guiders with more than one positive conditioning (DualCFGGuider's `cond1`/`cond2`) are built by
ComfyUI's own templates with the *negative* text in the second one: OmniGen2's edit template feeds
`cond2` from the negative encoder through a ReferenceLatent, CosXL's edit example from the `negative`
output of InstructPixToPixConditioning. So every path carries a sign: it starts at the input's side and
turns negative through a node's `negative` output; an encoder any negative path reaches is the negative
prompt's, and the prompt goes only to encoders that positive paths alone reach (unless the graph feeds
one encoder to both sides and has no other: then it is the prompt's, as its author wired it).

Only constant inputs are bound; an input fed by a link to a primitive node (PrimitiveInt, a string
node...) is bound at that node's constant. `skip(node, input)` lets the caller exclude inputs already
bound by placeholders or a YAML sidecar.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

Graph = dict[str, Any]
Target = tuple[str, str]  # (node id, input name)

# Text inputs of the prompt encoders.
TEXT_INPUTS: dict[str, tuple[str, ...]] = {
    "CLIPTextEncode": ("text",),
    "CLIPTextEncodeSDXL": ("text_g", "text_l"),
    "CLIPTextEncodeSDXLRefiner": ("text",),
    "CLIPTextEncodeFlux": ("clip_l", "t5xxl"),
    "CLIPTextEncodeSD3": ("clip_l", "clip_g", "t5xxl"),
    "CLIPTextEncodeHiDream": ("clip_l", "clip_g", "t5xxl", "llama"),
    "CLIPTextEncodeHunyuanDiT": ("bert", "mt5xl"),
    "CLIPTextEncodePixArtAlpha": ("text",),
    "CLIPTextEncodeControlnet": ("text",),
    "CLIPTextEncodeLumina2": ("user_prompt",),
    "TextEncodeQwenImageEdit": ("prompt",),
    "TextEncodeQwenImageEditPlus": ("prompt",),
    "TextEncodeHunyuanVideo_ImageToVideo": ("prompt",),
}
# Samplers whose conditioning arrives as `positive` / `negative` inputs.
COND_SAMPLERS = ("KSampler", "KSamplerAdvanced", "SamplerCustom")
# Guiders (SamplerCustomAdvanced.guider): which inputs are positive, which negative. Other inputs
# (PerpNegGuider's `empty_conditioning`, an image condition) carry no prompt. Guiders not listed here
# are read by their input names (see `_guider_sides`).
GUIDERS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "BasicGuider": (("conditioning",), ()),
    "CFGGuider": (("positive",), ("negative",)),
    "DualCFGGuider": (("cond1", "cond2"), ("negative",)),
    "PerpNegGuider": (("positive",), ("negative",)),
}
POSITIVE, NEGATIVE = True, False
# Nodes whose `value` is a string a workflow's text inputs read (ComfyUI's newer templates).
STRING_PRIMITIVES = ("PrimitiveStringMultiline", "PrimitiveString")
# Conditioning nodes that carry no text of the prompt: stop there.
STOP_NODES = frozenset({"ConditioningZeroOut"})

SEED_INPUTS = {"KSampler": "seed", "KSamplerAdvanced": "noise_seed", "SamplerCustom": "noise_seed",
               "RandomNoise": "noise_seed"}
MODEL_INPUTS = {"CheckpointLoaderSimple": "ckpt_name", "CheckpointLoader": "ckpt_name",
                "UNETLoader": "unet_name", "unCLIPCheckpointLoader": "ckpt_name",
                "ImageOnlyCheckpointLoader": "ckpt_name"}
LORA_NODES = ("LoraLoader", "LoraLoaderModelOnly")
KSAMPLERS = ("KSampler", "KSamplerAdvanced")
# Nodes whose `pixels` input is the picture being edited (img2img, inpainting).
PIXEL_ENCODERS = ("VAEEncode", "VAEEncodeForInpaint", "InpaintModelConditioning")


def link_of(value: Any) -> tuple[str, int] | None:
    """`["4", 0]` -> ("4", 0); anything else -> None."""
    if isinstance(value, list) and len(value) == 2 and isinstance(value[0], str) and isinstance(value[1], int):
        return value[0], value[1]
    return None


def _inputs(graph: Graph, node_id: str) -> dict[str, Any]:
    node = graph.get(node_id)
    return node.get("inputs", {}) if isinstance(node, dict) else {}


def _class(graph: Graph, node_id: str) -> str:
    node = graph.get(node_id)
    return str(node.get("class_type", "")) if isinstance(node, dict) else ""


class Detector:
    """One pass over one graph; `run()` gives parameter name -> targets."""

    def __init__(self, graph: Graph, skip: Callable[[str, str], bool]) -> None:
        self.g = graph
        self.skip = skip
        self.found: dict[str, list[Target]] = {}

    # --------------------------------------------------------------------------------- helpers
    def _nodes(self, *classes: str) -> Iterator[str]:
        for nid, node in self.g.items():
            if isinstance(node, dict) and node.get("class_type") in classes:
                yield nid

    def _const(self, node_id: str, name: str) -> Target | None:
        """The constant behind `node.name`: itself, or the single constant of a primitive feeding it."""
        inputs = _inputs(self.g, node_id)
        if name not in inputs:
            return None
        value = inputs[name]
        link = link_of(value)
        if link is not None:
            consts = [k for k, v in _inputs(self.g, link[0]).items() if link_of(v) is None]
            if len(consts) != 1:
                return None
            node_id, name, value = link[0], consts[0], _inputs(self.g, link[0])[consts[0]]
        if isinstance(value, list | dict) or self.skip(node_id, name):
            return None
        return node_id, name

    def _add(self, param: str, target: Target | None) -> None:
        if target is None:
            return
        for taken in self.found.values():
            if target in taken:
                return
        bucket = self.found.setdefault(param, [])
        bucket.append(target)

    def _add_inputs(self, param: str, classes: tuple[str, ...] | str, name: str) -> None:
        for nid in self._nodes(*((classes,) if isinstance(classes, str) else classes)):
            self._add(param, self._const(nid, name))

    def _text(self, node_id: str, name: str, seen: set[str]) -> Target | None:
        """Where the text of `node.name` is written: the input itself, a string primitive feeding it
        (PrimitiveStringMultiline / PrimitiveString `value`, as newer templates carry the prompt, often in a
        subgraph with ids like `48:51`), or the part of a StringConcatenate that is such a primitive (else
        its `string_a`)."""
        link = link_of(_inputs(self.g, node_id).get(name))
        if link is None or link[0] in seen:
            return self._const(node_id, name)
        seen.add(link[0])
        source, cls = link[0], _class(self.g, link[0])
        if cls in STRING_PRIMITIVES:
            return self._text(source, "value", seen) if link_of(_inputs(self.g, source).get("value")) \
                else self._const(source, "value")
        if cls == "StringConcatenate":
            parts = ("string_a", "string_b")
            linked = [p for p in parts if link_of(_inputs(self.g, source).get(p))]
            for part in linked:
                found = self._text(source, part, seen)
                if found is not None:
                    return found
            return self._const(source, "string_a") if "string_a" not in linked else None
        return self._const(node_id, name)

    # ------------------------------------------------------------------------------ conditioning
    def _encoders(self, start: Any, sign: bool, seen: set[tuple[str, int]]) -> list[tuple[Target, bool]]:
        """Text inputs of the encoders upstream of a conditioning link, each with the sign of its path."""
        link = link_of(start)
        if link is None or link in seen:
            return []
        seen.add(link)
        nid, slot = link
        cls = _class(self.g, nid)
        inputs = _inputs(self.g, nid)
        if cls in STOP_NODES:
            return []
        texts = TEXT_INPUTS.get(cls)
        if texts is None and "TextEncode" in cls:
            texts = tuple(k for k, v in inputs.items() if isinstance(v, str))
        if texts:
            return [(t, sign) for t in (self._text(nid, name, set()) for name in texts) if t is not None]
        sided = [k for k, v in inputs.items() if link_of(v) and ("positive" in k.lower() or "negative" in k.lower())]
        if sided:  # ControlNetApplyAdvanced, InstructPixToPixConditioning, PairConditioning...: slot-wise
            if slot > 0:  # a `negative` output (WanPhantomSubjectToVideo has two)
                sign = NEGATIVE
            side = "positive" if slot == 0 else "negative"
            follow = [k for k in sided if side in k.lower()]
        else:
            follow = [k for k in inputs if "cond" in k.lower()]
        out: list[tuple[Target, bool]] = []
        for name in follow:
            out.extend(self._encoders(inputs.get(name), sign, seen))
        return out

    def _guider_sides(self, guider: str) -> tuple[list[Any], list[Any]]:
        """The positive and negative conditioning links of a guider node."""
        gin = _inputs(self.g, guider)
        known = GUIDERS.get(_class(self.g, guider))
        if known is not None:
            pos_names, neg_names = known
        else:  # a guider we do not know: trust its input names
            pos_names = tuple(k for k in gin if k in ("positive", "conditioning") or
                              (k.startswith("cond") and k[4:].isdigit()))
            neg_names = tuple(k for k in gin if "negative" in k.lower())
        return [gin.get(k) for k in pos_names], [gin.get(k) for k in neg_names]

    def _prompts(self) -> None:
        starts: list[tuple[Any, bool]] = []
        for nid in self._nodes(*COND_SAMPLERS):
            starts.append((_inputs(self.g, nid).get("positive"), POSITIVE))
            starts.append((_inputs(self.g, nid).get("negative"), NEGATIVE))
        for nid in self._nodes("SamplerCustomAdvanced"):
            guider = link_of(_inputs(self.g, nid).get("guider"))
            if guider is None:
                continue
            pos, neg = self._guider_sides(guider[0])
            starts.extend((p, POSITIVE) for p in pos)
            starts.extend((n, NEGATIVE) for n in neg)
        found: list[tuple[Target, bool]] = []
        for start, sign in starts:
            found.extend(self._encoders(start, sign, set()))
        negative = list(dict.fromkeys(t for t, sign in found if sign is NEGATIVE))
        positive = list(dict.fromkeys(t for t, sign in found if sign is POSITIVE))
        only_positive = [t for t in positive if t not in negative]
        if not only_positive and positive:  # one encoder wired to both sides, and no other
            only_positive = positive
            negative = [t for t in negative if t not in positive]
        for t in only_positive:
            self._add("prompt", t)
        for t in negative:
            self._add("negative_prompt", t)

    # -------------------------------------------------------------------------------- models
    def _model_chain(self) -> list[str]:
        """Node ids upstream of the first sampler's model input, nearest first."""
        starts = [_inputs(self.g, n).get("model") for n in self._nodes(*COND_SAMPLERS)]
        for nid in self._nodes("SamplerCustomAdvanced"):
            guider = link_of(_inputs(self.g, nid).get("guider"))
            if guider:
                starts.append(_inputs(self.g, guider[0]).get("model"))
        chain: list[str] = []
        link = next((link_of(s) for s in starts if link_of(s)), None)
        while link is not None and link[0] not in chain:
            chain.append(link[0])
            link = link_of(_inputs(self.g, link[0]).get("model"))
        return chain

    def _models(self) -> None:
        chain = self._model_chain()
        loaders = [n for n in chain if _class(self.g, n) in MODEL_INPUTS]
        if not loaders:  # the chain is broken or unusual: bind a loader only when there is no doubt
            every = list(self._nodes(*MODEL_INPUTS))
            loaders = every if len(every) == 1 else []
        for nid in loaders[:1]:
            self._add("model", self._const(nid, MODEL_INPUTS[_class(self.g, nid)]))
        loras = [n for n in chain if _class(self.g, n) in LORA_NODES] or list(self._nodes(*LORA_NODES))
        for nid in loras[:1]:
            self._add("lora", self._const(nid, "lora_name"))
            self._add("lora_strength", self._const(nid, "strength_model"))
            self._add("lora_strength", self._const(nid, "strength_clip"))
        vaes = list(self._nodes("VAELoader"))
        if len(vaes) > 1:  # prefer the one the decoder uses
            decoders = [link_of(_inputs(self.g, n).get("vae")) for n in self._nodes("VAEDecode")]
            vaes = [d[0] for d in decoders if d and d[0] in vaes][:1] or vaes[:1]
        for nid in vaes[:1]:
            self._add("vae", self._const(nid, "vae_name"))

    # ---------------------------------------------------------------------------------- main
    def run(self) -> dict[str, list[Target]]:
        self._prompts()
        for cls, name in SEED_INPUTS.items():
            self._add_inputs("seed", cls, name)
        classes = tuple(dict.fromkeys(_class(self.g, n) for n in self.g))  # graph order, no repeats
        schedulers = tuple(c for c in classes if c.endswith("Scheduler"))
        self._add_inputs("steps", KSAMPLERS + schedulers, "steps")
        self._add_inputs("cfg", KSAMPLERS + ("SamplerCustom", "CFGGuider", "PerpNegGuider"), "cfg")
        self._add_inputs("cfg", "DualCFGGuider", "cfg_conds")  # the text guidance; cfg_cond2_negative stays
        self._add_inputs("sampler", KSAMPLERS + ("KSamplerSelect",), "sampler_name")
        self._add_inputs("scheduler", KSAMPLERS + ("BasicScheduler",), "scheduler")
        self._add_inputs("denoise", ("KSampler",) + schedulers, "denoise")
        latents = tuple(c for c in classes if c.startswith("Empty") and "Latent" in c)
        for name in ("width", "height", "batch_size"):
            self._add_inputs(name, latents, name)
        self._add_inputs("width", "ModelSamplingFlux", "width")
        self._add_inputs("height", "ModelSamplingFlux", "height")
        self._add_inputs("width", "CLIPTextEncodeSDXL", "target_width")
        self._add_inputs("height", "CLIPTextEncodeSDXL", "target_height")
        self._models()
        self._add_inputs("clip_skip", "CLIPSetLastLayer", "stop_at_clip_layer")
        self._add_inputs("guidance", ("FluxGuidance", "CLIPTextEncodeFlux"), "guidance")
        images = list(self._nodes("LoadImage"))
        if len(images) > 1:
            encoders = [link_of(_inputs(self.g, n).get("pixels")) for n in self._nodes(*PIXEL_ENCODERS)]
            images = [e[0] for e in encoders if e and e[0] in images][:1]
        for nid in images[:1]:
            self._add("image", self._const(nid, "image"))
        for nid in list(self._nodes("LoadImageMask"))[:1]:
            self._add("mask", self._const(nid, "image"))
        return {k: v for k, v in self.found.items() if v}


def detect(graph: Graph, skip: Callable[[str, str], bool] = lambda n, i: False) -> dict[str, list[Target]]:
    """Parameter name -> [(node id, input name)] for an API-format graph."""
    return Detector(graph, skip).run()


def mask_from_alpha(graph: Graph, image_node: str) -> bool:
    """Whether the graph uses the MASK output (slot 1) of LoadImage `image_node`: an inpainting workflow
    that reads the mask from the image's alpha channel, as ComfyUI's mask editor saves it."""
    for node in graph.values():
        if not isinstance(node, dict):
            continue
        for value in node.get("inputs", {}).values():
            if link_of(value) == (image_node, 1):
                return True
    return False
