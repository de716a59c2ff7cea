"""Characters and LoRAs on every request: the resolver, plus what a `char=` and a `<lora:...>` add.

Every surface (links, jobs, /edit, the A1111 and OpenAI fronts) resolves through this class, so a character
named by `char=<name>` (or a prompt starting with `char:<name>`, for clients that send nothing but text) and
the LoRAs a prompt names reach the graph the same way everywhere:

- the profile's words go before the prompt, its negative after the negative the request resolves to, its
  style and workflow apply when the request names none; `<lora:name:weight>` tags are taken out of the text;
- the profile's LoRAs and the tags become loader nodes (`render/loras.py`), checked against the LoRAs the
  backends list (400 naming them), and the pool then routes to a backend that has them;
- the reference pictures go to the workflow's LoadImage nodes (`render/references.py`) and travel with
  the job as uploads;
- the profile's version is written into the samplers' `_meta`, so it is part of the graph and so of the
  cache key: an edited character gives a new picture on the next request.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from typing import Any

from linkpix.comfy.objectinfo import choices
from linkpix.config import LoadedConfig
from linkpix.errors import BadRequest, LinkPixError
from linkpix.model import GenerationRequest, RenderedJob, validate_workflow_name
from linkpix.pipeline.resolver import Resolver
from linkpix.providers.hosted import Providers
from linkpix.render.characters import Character, CharacterStore, check_name
from linkpix.render.detect import COND_SAMPLERS
from linkpix.render.loras import LoraUse, insert_loras, match_lora, merge_loras, take_lora_tags
from linkpix.render.references import bind_references
from linkpix.render.styles import combine_negative
from linkpix.storage.jsonstore import JsonStore
from linkpix.storage.uploads import Uploads

PREFIX_RE = re.compile(r"^\s*char:([A-Za-z0-9_-][A-Za-z0-9_.-]{0,63})(?:[\s,]+|$)")
_NEGATIVE_KEYS = ("negative_prompt", "negative", "neg")
_SAMPLERS = COND_SAMPLERS + ("SamplerCustomAdvanced",)


def split_prefix(prompt: str) -> tuple[str | None, str]:
    """`"char:alice, in a cafe"` -> ("alice", "in a cafe"); no prefix -> (None, prompt)."""
    m = PREFIX_RE.match(prompt)
    return (m.group(1), prompt[m.end():]) if m else (None, prompt)


def _join(words: str, prompt: str) -> str:
    words, prompt = words.strip().rstrip(","), prompt.strip()
    return f"{words}, {prompt}" if words and prompt else words or prompt


class CharacterResolver(Resolver):
    """The Resolver with characters and LoRAs (see the module docstring)."""

    def __init__(self, config: Callable[[], LoadedConfig], store: JsonStore,
                 object_info: Callable[[], dict | None],
                 check_graph: Callable[[dict[str, Any]], None] | None = None, *,
                 uploads: Uploads | None = None, providers: Providers | None = None) -> None:
        """`uploads`: the store characters' reference pictures are kept in (None: characters without them)."""
        super().__init__(config, store, object_info, check_graph, providers)
        self._json = store
        self._get_config = config
        self._ask_info = object_info
        self._check_models = check_graph
        self.uploads = uploads

    def characters(self) -> CharacterStore:
        return CharacterStore(self._json, self._get_config().data_dir)

    def lora_files(self) -> list[Any] | None:
        """The LoRA files the backends have (merged), or None when none answers."""
        try:
            info = self._ask_info()
        except LinkPixError:
            return None
        return choices(info, "LoraLoader", "lora_name") if info else None

    def resolve(self, req: GenerationRequest) -> RenderedJob:
        named, prompt = split_prefix(req.prompt)
        if named and req.char and named != req.char:
            raise BadRequest(f"the prompt names character {named!r} and char= names {req.char!r}; name one",
                             {"parameter": "char"})
        name = req.char or (check_name(named) if named else None)
        character = self._character(req.char_owner or req.user, name) if name else None
        if character is not None:
            prompt = _join(character.words, prompt)
        prompt, tags = take_lora_tags(prompt)
        params = dict(req.params)
        negative_keys = self._negative_keys(params)
        negative_tags: list[LoraUse] = []
        for key in negative_keys:
            if isinstance(params.get(key), str):
                params[key], found = take_lora_tags(params[key], "negative_prompt")
                negative_tags += found
        if character is None and not tags and not negative_tags and prompt == req.prompt:
            return super().resolve(req)
        if not prompt.strip():
            raise BadRequest("the prompt is empty once the <lora:...> tags are taken out", {"parameter": "prompt"})
        changed = dataclasses.replace(req, prompt=prompt, params=params, char=name,
                                      **self._profile_choices(req, character))
        job = super().resolve(changed)
        template = self.template(job.workflow)
        if character is not None and character.negative and "negative_prompt" in template.params:
            # after the negative the request resolved to, whichever layer it came from: render once more
            negative = combine_negative(job.negative, character.negative)
            values = {k: v for k, v in job.params.items() if k in template.params}
            job = dataclasses.replace(job, negative=negative, graph=template.render(
                {**values, "prompt": job.prompt, "negative_prompt": negative}))
        return self._finish(changed, job, character,
                            merge_loras(list(character.loras if character else ()), negative_tags, tags))

    def image_supplied(self, req: GenerationRequest) -> bool:
        """A character's reference pictures go to the workflow's LoadImage nodes (`_finish`): an image
        workflow run with such a character has its input image."""
        found = self.characters().find(req.char_owner or req.user, req.char) if req.char else None
        return bool(found is not None and found.references)

    def _character(self, owner: str, name: str) -> Character:
        """A 400 (like an unknown style) for a name the caller cannot use, listing the ones they can."""
        store = self.characters()
        found = store.find(owner, name)
        if found is None:
            raise BadRequest(store.unknown(owner, name), {"parameter": "char", "allowed": sorted(store.visible(owner))},
                             rule="character")
        return found

    def _negative_keys(self, params: dict[str, Any]) -> list[str]:
        """The request's spellings of the negative prompt (`neg`, `negative`, aliases in placeholders.json)."""
        registry = self.registry()
        return [k for k in params if k in _NEGATIVE_KEYS or registry.canonical(k) == "negative_prompt"]

    @staticmethod
    def _profile_choices(req: GenerationRequest, character: Character | None) -> dict[str, Any]:
        if character is None:
            return {}
        out: dict[str, Any] = {}
        if req.workflow is None and character.workflow:
            out["workflow"] = validate_workflow_name(character.workflow)
        if req.styles is None and character.style:
            out["styles"] = (character.style,)
        return out

    def _finish(self, req: GenerationRequest, job: RenderedJob, character: Character | None,
                loras: list[LoraUse]) -> RenderedJob:
        graph, notes, uploads = job.graph, list(job.notes), list(job.uploads)
        params = dict(job.params)
        if loras:
            available = self.lora_files()
            graph, more = insert_loras(graph, [(match_lora(u.name, available), u) for u in loras])
            notes += more
            params["loras"] = ",".join(f"{u.name}:{u.strength:g}" for u in loras)
            if self._check_models is not None:
                self._check_models(graph)
        if character is not None:
            if character.references:
                graph, used = self._references(req, job, graph, character)
                uploads += used
                if len(used) < len(character.references):
                    notes.append(f"workflow {job.workflow} takes {len(used)} of character {character.name}'s "
                                 f"{len(character.references)} reference pictures")
            for node in graph.values():
                if isinstance(node, dict) and node.get("class_type") in _SAMPLERS:
                    node["_meta"] = {**(node.get("_meta") or {}),
                                     "linkpix_character": f"{character.name}@{character.version}"}
            params.update(char=character.name, char_version=character.version)
        return dataclasses.replace(job, graph=graph, notes=tuple(notes), uploads=tuple(uploads), params=params)

    def _references(self, req: GenerationRequest, job: RenderedJob, graph: dict[str, Any],
                    character: Character) -> tuple[dict[str, Any], list[Any]]:
        if self.uploads is None:
            raise BadRequest("reference pictures need the upload store, which this resolver was built without")
        images = [self.uploads.get(ref, "references") for ref in character.references]
        binding = self.template(job.workflow).params.get("image")
        taken = binding.slots[0].node if binding is not None and binding.slots and req.input_images else None
        try:
            info = self._ask_info()
        except LinkPixError:
            info = None
        graph, count = bind_references(graph, [i.name for i in images], taken, info)
        return graph, images[:count]
