"""The JSON Schemas of /openapi.json: every body the API answers with, and the bodies it takes.

The views name these in their docstrings (`schema: Job`), so a view documents what it answers and the
shapes live in one place. They are the contract Schemathesis checks every answer against
(tests/test_schemathesis.py): a field listed under `required` is always there, a type is always that type
(`nullable` where the code writes null); objects stay open (`additionalProperties` is not closed), so a
new field is never a breaking change. The fronts answer in their tools' own shapes (A1111, OpenAI,
ComfyUI), errors included.
"""

from __future__ import annotations

from typing import Any

from linkpix.model import SEED_MAX
from linkpix.storage.media import FILE_TYPES
from linkpix.web.fronts.a1111.names import sampler_names

Schema = dict[str, Any]

STR: Schema = {"type": "string"}
# What every route takes as a prompt: some text that is not only spaces, no NUL (max_prompt_chars is checked too).
PROMPT: Schema = {"type": "string", "minLength": 1, "pattern": "^[^\\x00]*[^\\s\\x00][^\\x00]*$"}
INT: Schema = {"type": "integer"}
NUM: Schema = {"type": "number"}
BOOL: Schema = {"type": "boolean"}
ANY: Schema = {}
OBJ: Schema = {"type": "object"}


def nullable(schema: Schema) -> Schema:
    return {**schema, "nullable": True}


def obj(required: list[str] | tuple[str, ...] = (), **properties: Schema) -> Schema:
    out: Schema = {"type": "object", "properties": properties}
    if required:
        out["required"] = list(required)
    return out


def array(items: Schema | str) -> Schema:
    return {"type": "array", "items": {"$ref": f"#/components/schemas/{items}"} if isinstance(items, str)
            else items}


CHAR: Schema = {"type": "string", "pattern": "^([A-Za-z0-9_-][A-Za-z0-9_.-]{0,63})?$",
                "description": "LinkPix: a character profile (docs/characters.md); empty: none"}


def ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


STRINGS = array(STR)

# ------------------------------------------------------------------------------------------ errors
ERRORS: dict[str, Schema] = {
    "Error": obj(["error", "message"], error=STR, message=STR, details=ANY),
    "A1111Error": obj(["error", "detail"], error=STR, detail=STR, body=ANY, errors=ANY),
    "OpenAIError": obj(["error"], error=obj(["message", "type"], message=STR, type=STR, param=nullable(STR),
                                            code=nullable(STR))),
    "ComfyError": obj(["error"], error=obj(["type", "message"], type=STR, message=STR, details=ANY,
                                           extra_info=OBJ), node_errors=OBJ),
}

# ------------------------------------------------------------------------------------------ LinkPix
IMAGE_ENTRY = obj(["url"], url=STR, seed=INT, width=nullable(INT), height=nullable(INT), format=STR, cache=STR,
                  prompt_id=nullable(STR))
LORA = obj(["name", "strength"], name=STR, strength=NUM, clip_strength=NUM)
# A LoRA as a body names one (render/loras.py): a file name of ComfyUI's loras folder (no '..'), strengths within
# +-10; a bare name is strength 1.
LORA_NAME: Schema = {"type": "string", "maxLength": 200,
                     "pattern": "^[A-Za-z0-9_](\\.?[A-Za-z0-9 _()+\\[\\]/,-])*\\.?$"}
STRENGTH: Schema = {"type": "number", "minimum": -10, "maximum": 10}
CHAR_TEXT: Schema = {"type": "string", "maxLength": 2000, "pattern": "^[^\\x00]*$"}  # words, negative, description
# Names of this instance's workflows and styles: the served document lists them (web/openapinames.py).
WORKFLOW: Schema = {"type": "string", "nullable": True, "x-linkpix-names": "workflows",
                    "description": "a workflow file name (with or without .json); empty: the default"}
STYLE: Schema = {"oneOf": [{"type": "string", "x-linkpix-names": "style-list"},
                           {"type": "array", "maxItems": 8, "items": {"type": "string", "x-linkpix-names": "styles"}}],
                 "description": "a style name, comma-separated names, or a list"}
OPTIONAL_STYLE: Schema = {"type": "string", "nullable": True, "x-linkpix-names": "styles"}
EDIT_WORKFLOW: Schema = {**WORKFLOW, "x-linkpix-names": "image-workflows",
                         "description": "a workflow that takes an image; empty: edit_workflow"}
LORA_USE: Schema = {"oneOf": [LORA_NAME, {**obj(["name"], name=LORA_NAME, strength=STRENGTH, clip_strength=STRENGTH),
                                          "additionalProperties": False}]}
LINKPIX: dict[str, Schema] = {
    # One Server-Sent Event as a stream's reader parses it (OpenAPI before 3.2: the schema is each event's)
    "SseEvent": obj(["data"], event=STR, data=STR, id=STR, retry=INT),
    "Health": obj(["status", "comfyui", "cache", "pending_generations"],
                  status={"type": "string", "enum": ["ok", "degraded"]},
                  comfyui={"type": "string", "enum": ["reachable", "unreachable"]},
                  comfyui_url=STR, comfyui_version=nullable(STR), queue_running=INT, queue_pending=INT,
                  error=STR, pending_generations=INT, fair_queue={"type": "object"},
                  cache=obj(["hits", "misses", "images", "bytes"], hits=INT, misses=INT, images=INT, bytes=INT,
                            max_bytes=nullable(INT), users=OBJ),
                  backends_up=INT,
                  backends=array(obj(["name", "state", "retiring"], name=STR, url=STR, state=STR,
                                     for_seconds=nullable(NUM), queue=nullable(INT), inflight=INT,
                                     last_model=nullable(STR), runs=INT, failures=INT,
                                     mean_run_seconds=nullable(NUM), last_error=nullable(STR),
                                     version=nullable(STR), jobs_api=nullable(BOOL), devices=array(OBJ),
                                     weight=NUM,
                                     max_queue=nullable(INT), tags=STRINGS, stops_pending=INT, retiring=BOOL)),
                  providers=array(obj(["name", "kind", "models"], name=STR, kind=STR, models=STRINGS,
                                      priority=INT, features=STRINGS))),
    "Ready": obj(["ready", "reason"], ready=BOOL, reason=STR),
    "Usage": obj(["days", "totals"], days=array(obj(["user", "day", "gpu_seconds", "runs"], user=STR, day=STR,
                                                     gpu_seconds=NUM, runs=INT, provider_cost=NUM,
                                                     provider_runs=INT)),
                 totals={"type": "object", "additionalProperties": NUM}),
    "Character": obj(["name", "words", "negative", "loras", "references", "scope", "version"], name=STR,
                     words=STR, negative=STR, loras=array(LORA), references=STRINGS, style=nullable(STR),
                     workflow=nullable(STR), description=STR, scope={"type": "string", "enum": ["user", "shared"]},
                     version=STR),
    "CharacterList": obj(["characters"], characters=array("Character")),
    # Unknown fields are refused (render/characters.parse_profile), so the body is closed.
    "CharacterBody": {**obj(words=CHAR_TEXT, negative=CHAR_TEXT,
                            loras={"type": "array", "maxItems": 8, "items": LORA_USE},
                            references={"type": "array", "maxItems": 4, "items": {
                                "type": "string", "pattern": "^linkpix_[0-9a-f]{16}\\.(png|jpg|gif|webp)$"}},
                            style=OPTIONAL_STYLE, workflow=WORKFLOW, description=CHAR_TEXT,
                            name=STR, version=STR,
                            scope={"type": "string", "enum": ["user", "shared"]}),
                      "additionalProperties": False},
    "Styles": {"type": "object", "additionalProperties": obj(pre=STR, post=STR, negative=STR, description=STR)},
    "WorkflowList": obj(["workflows", "default"], workflows=STRINGS, default=STR, edit_default=nullable(STR),
                        needs={"type": "object", "additionalProperties": obj(
                            image=BOOL, mask={"type": "string", "nullable": True, "enum": ["file", "alpha", None]})}),
    "WorkflowDescription": obj(["name", "parameters"], name=STR, format=STR, nodes=INT, needs=OBJ,
                               settings=nullable(OBJ),
                               parameters={"type": "object", "additionalProperties": obj(
                                   ["type", "source"], type=STR, source=STR, default=ANY, description=STR,
                                   min=NUM, max=NUM, targets=array(obj(["node", "input"], node=STR, input=STR,
                                                                       class_type=STR, mode=STR)))}),
    "ModelLists": {"type": "object", "additionalProperties": STRINGS},
    "RequestLog": array(obj(["time", "method", "path", "status", "ms"], time=NUM, method=STR, path=STR,
                            status=nullable(INT), ms=NUM, user=nullable(STR), cache=STR, error=STR)),
    "ImageMeta": obj(["url", "cache", "seed", "workflow", "format"], url=STR,
                     cache={"type": "string", "enum": ["hit", "miss"]}, prompt=STR, negative=nullable(STR),
                     seed=INT, seed_is_random=BOOL, workflow=STR, format=STR, width=nullable(INT),
                     height=nullable(INT), bytes=INT, params=OBJ, ignored=STRINGS, notes=STRINGS,
                     generation_ms=nullable(INT)),
    "JobAccepted": obj(["job_id", "status", "status_url", "events_url"], job_id=STR, status=STR, status_url=STR,
                       events_url=STR, image_count=INT, ignored=STRINGS),
    "Job": obj(["job_id", "status", "user", "created", "image_count", "images"],
               job_id=STR, status={"type": "string", "enum": ["queued", "running", "succeeded", "failed",
                                                              "cancelled"]},
               user=STR, created=NUM, started=nullable(NUM), finished=nullable(NUM), prompt_id=nullable(STR),
               prompt_ids=STRINGS, backend=nullable(STR), image_count=INT, prompt=nullable(STR),
               workflow=nullable(STR), images=array(IMAGE_ENTRY),
               error=nullable(obj(["error", "message"], error=STR, message=STR, details=ANY)),
               webhook=nullable(obj(url=STR, include_base64=BOOL, signed=BOOL, state=STR, attempts=array(OBJ))),
               progress=nullable(obj(image=INT, images=INT, step=INT, total=nullable(INT), node=nullable(STR))),
               queue_position=nullable(INT), fair_queue_position=nullable(INT)),
    "JobList": obj(["jobs"], jobs=array("Job")),
    "Upload": obj(["id", "bytes"], id=STR, bytes=INT),
    "EditMeta": obj(["method", "model_output", "seed", "workflow"], url=nullable(STR),
                    cache={"type": "string", "enum": ["hit", "miss"]},
                    method={"type": "string", "enum": ["lut", "region", "direct"]},
                    fit=nullable(obj(mean=NUM, p95=NUM, miss=NUM)), format=STR, width=nullable(INT),
                    height=nullable(INT), bytes=nullable(INT), model_output=STR, generation_ms=nullable(INT),
                    prompt=STR, seed=INT, workflow=STR, params=OBJ, notes=STRINGS,
                    region_share=nullable(NUM), mask_url=nullable(STR), ignored=STRINGS),
}

# ------------------------------------------------------------------------------------------ bodies
# An image inside JSON: PNG, JPEG, WebP or GIF bytes in base64 (a data: URL too). The custom format names what
# no JSON Schema keyword can say (that the bytes decode as an image); tests/test_schemathesis.py draws such images.
IMAGE_B64: Schema = {"type": "string", "format": "image-base64"}
IMAGE_OR_ID: Schema = {"type": "string", "format": "image-base64-or-upload-id",
                       "description": "base64 (or a data: URL) of a PNG, JPEG, WebP or GIF, or one of your upload ids"}
SEED_INT: Schema = {"type": "integer", "minimum": -1, "maximum": SEED_MAX, "description": "-1: random"}
# As text (a link's `seed=` too): random (any case), -1, or 0 to SEED_MAX; blanks around; empty or blank: derived.
SEED_TEXT: Schema = {"type": "string",
                     "pattern": "^\\s*(-1|[0-9]{1,19}|1[0-7][0-9]{18}|[Rr][Aa][Nn][Dd][Oo][Mm])?\\s*$"}
SEED: Schema = {"oneOf": [SEED_INT, SEED_TEXT],
                "description": "an integer, or random / -1"}
PARAM_VALUE: Schema = {"oneOf": [STR, NUM, BOOL]}
# Any other field of a body is a workflow parameter, named as one (model.PARAM_NAME_RE).
PARAMS_BY_NAME: Schema = {"patternProperties": {"^[A-Za-z_][A-Za-z0-9_]{0,63}$": PARAM_VALUE},
                          "additionalProperties": False}
# An http(s) URL with a host and a port of 1-65535, no user name or password (jobs/targets.check_url); where the
# host leads (DNS, the address kind) is the rule `webhook_host`, which no schema can state.
_PORT = "([1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])"
WEBHOOK_URL: Schema = {"type": "string", "pattern": "^([Hh][Tt][Tt][Pp][Ss]?://([^/@:?#\\[\\]\\x00-\\x20\\x7f]+|"
                                              f"\\[[0-9A-Fa-f:.]+\\])(:{_PORT})?([/?#][^\\x00-\\x20\\x7f]*)?)?$",
                       "description": "POSTed to when the job succeeds or fails: an http(s) URL; empty: none"}
# webhook_secret signs a webhook, so it needs a (non-empty) webhook_url beside it.
WEBHOOK_SECRET_NEEDS_URL: Schema = {"dependencies": {"webhook_secret": {
    "required": ["webhook_url"], "properties": {"webhook_url": {"minLength": 1}}}}}
# A side in pixels: 16 to 8192 (width x height also at most max_pixels, checked by the route), or its digits.
_SIDE_DIGITS = "^(1[6-9]|[2-9][0-9]|[1-9][0-9]{2}|[1-7][0-9]{3}|80[0-9]{2}|81[0-8][0-9]|819[0-2])$"  # 16..8192
_SIDE = _SIDE_DIGITS[1:-1]
SIDE: Schema = {"oneOf": [{"type": "integer", "minimum": 16, "maximum": 8192},
                          {"type": "string", "pattern": _SIDE_DIGITS}]}
BODIES: dict[str, Schema] = {
    "GenerateBody": obj(
        ["prompt"], prompt=PROMPT, negative=STR, width=SIDE, height=SIDE,
        seed=SEED, style=STYLE, workflow=WORKFLOW, format={"type": "string", "enum": ["", "png", "jpeg", "webp"]},
        char=CHAR,
        params={"type": "object", "additionalProperties": PARAM_VALUE, "description": "any workflow parameter"},
        image_count={"oneOf": [{"type": "integer", "minimum": 1, "maximum": 8},
                               {"type": "string", "pattern": "^[1-8]$"}],
                     "description": "1 to max_image_count (8); each image its own seed"},
        user={"type": "string", "pattern": "^[A-Za-z0-9_-]{0,64}$",
              "description": "ignored when an API key is sent (the key's user wins)"},
        webhook_url=WEBHOOK_URL,
        webhook_secret={"type": "string", "minLength": 1, "maxLength": 256,
                        "description": "signs the webhook: a whsec_ secret (Standard "
                        "Webhooks, base64 of 24 to 64 bytes) or any text; webhook-signature, and X-LinkPix-Signature"},
        webhook_include_base64=BOOL,
        images={"type": "array", "items": IMAGE_OR_ID, "description": "input images: base64 or upload ids"},
        mask={**IMAGE_OR_ID, "description": "inpainting mask, base64 or upload id (white = change)"})
    | PARAMS_BY_NAME | WEBHOOK_SECRET_NEEDS_URL,
    "UploadJson": obj(["image"], image={**IMAGE_B64, "description": "the image, base64"}),
    "UploadForm": obj(["image"], image={"type": "string", "format": "binary"}),
    "EditForm": obj(["image", "prompt"], image={"type": "string", "format": "binary"},
                    mask={"type": "string", "format": "binary", "description": "white (or transparent) = change"},
                    prompt=PROMPT, workflow=EDIT_WORKFLOW,
                    method={"type": "string", "enum": ["auto", "lut", "region", "direct"]},
                    format={"type": "string", "enum": ["png", "jpeg", "webp", "cube", "json", "mask"]},
                    ) | PARAMS_BY_NAME,
    "EditJson": obj(["image", "prompt"], image=IMAGE_OR_ID, mask=IMAGE_OR_ID, prompt=PROMPT, workflow=EDIT_WORKFLOW,
                    method={"type": "string", "enum": ["auto", "lut", "region", "direct"]},
                    format={"type": "string", "enum": ["png", "jpeg", "webp", "cube", "json", "mask"]},
                    webhook_url=WEBHOOK_URL, webhook_secret={"type": "string", "minLength": 1, "maxLength": 256},
                    webhook_include_base64=BOOL) | PARAMS_BY_NAME | WEBHOOK_SECRET_NEEDS_URL,
}

# ------------------------------------------------------------------------------------------ A1111
# batch_size and n_iter: at least 1, and their product at most max_image_count (8 by default; checked by the route).
# A1111's sampler names (with a scheduler suffix: "DPM++ 2M Karras"); the backend's own ComfyUI names work too.
A1111_SAMPLER: Schema = {"type": "string", "enum": ["", *sampler_names()],
                         "description": "an A1111 sampler name, or the backend's ComfyUI sampler name"}
COUNT: Schema = {"type": "integer", "minimum": 1, "maximum": 8}
# A boolean as a multipart field carries it: text, true/false or 1/0 in any case; empty is false.
FORM_BOOL: Schema = {"type": "string", "pattern": "^([Tt][Rr][Uu][Ee]|[Ff][Aa][Ll][Ss][Ee]|1|0)?$"}
A1111_NAMED = obj(["name"], name=STR)
A1111: dict[str, Schema] = {
    # A1111's request models make every field but the prompt Optional: null is "not given" there, and here.
    "A1111Txt2ImgBody": obj(["prompt"], prompt=PROMPT, **{name: nullable(schema) for name, schema in dict(
        negative_prompt=STR, styles={"type": "array", "items": {"type": "string", "x-linkpix-names": "styles"}},
        seed=SEED_INT, steps=INT, cfg_scale=NUM,
        width=INT, height=INT, sampler_name=A1111_SAMPLER, sampler_index=A1111_SAMPLER, scheduler=STR,
        batch_size=COUNT, n_iter=COUNT,
        clip_skip=INT, enable_hr=BOOL, workflow={**WORKFLOW, "description": "LinkPix: a workflow name"},
        char=CHAR,
        override_settings=obj(sd_model_checkpoint=nullable(STR), sd_vae=nullable(STR),
                              CLIP_stop_at_last_layers=nullable(INT))).items()}),
    "A1111Img2ImgBody": {"allOf": [ref("A1111Txt2ImgBody"), obj(
        ["init_images"], init_images={"type": "array", "items": IMAGE_B64, "minItems": 1}, denoising_strength=NUM,
        mask={**IMAGE_B64, "description": "base64; white = change"}, inpainting_mask_invert=INT,
        include_init_images=BOOL)]},
    "A1111Images": obj(["images", "parameters", "info"], images=STRINGS, parameters=OBJ,
                       info={"type": "string", "description": "a JSON document, as A1111 sends it"}),
    "A1111Options": obj(["sd_model_checkpoint"], sd_model_checkpoint=nullable(STR), sd_vae=nullable(STR),
                        CLIP_stop_at_last_layers=INT, samples_format=STR),
    "A1111OptionsBody": obj(sd_model_checkpoint={"type": "string", "minLength": 1, "maxLength": 256},
                            sd_vae={"type": "string", "minLength": 1, "maxLength": 256},
                            CLIP_stop_at_last_layers={"type": "integer", "minimum": 1, "maximum": 12}),
    "A1111Progress": obj(["progress", "eta_relative", "state"], progress=NUM, eta_relative=NUM,
                         state=obj(job_count=INT, job_no=INT, sampling_step=INT, sampling_steps=INT,
                                   skipped=BOOL, interrupted=BOOL), current_image=nullable(STR),
                         textinfo=nullable(STR)),
    "A1111PromptStyles": array(obj(["name", "prompt", "negative_prompt"], name=STR, prompt=STR, negative_prompt=STR)),
    "A1111Named": array(A1111_NAMED),
    "A1111Models": array(obj(["title", "model_name"], title=STR, model_name=STR, filename=STR, hash=nullable(STR))),
    "A1111Vaes": array(obj(["model_name", "filename"], model_name=STR, filename=STR)),
    "A1111List": {"oneOf": [{"type": "array", "items": OBJ}, OBJ]},
}

# ------------------------------------------------------------------------------------------ OpenAI
OPENAI_N: Schema = {"type": "integer", "minimum": 1, "maximum": 8, "description": "1 to max_image_count (8)"}
OPENAI: dict[str, Schema] = {
    "A1111Memory": obj(["ram", "cuda"], ram={"type": "object"}, cuda={"type": "object"}),
    "OpenAIGenerationBody": obj(
        ["prompt"], prompt=PROMPT, model=STR, n=OPENAI_N,
        size={"type": "string", "pattern": f"^(auto|\\s*{_SIDE}\\s*[xX\u00d7]\\s*{_SIDE}\\s*)?$",
              "description": "WIDTHxHEIGHT (sides of 16 to 8192) or auto"},
        response_format={"type": "string", "enum": ["url", "b64_json"]}, style=STR, quality=STR,
        output_format={"type": "string", "enum": ["png", "jpeg", "webp"]}, user=nullable(STR), seed=SEED_INT,
        negative_prompt=STR, char=CHAR, background=STR,
        stream={"type": "boolean", "description": "Server-Sent Events"},
        partial_images={"type": "integer", "minimum": 0, "maximum": 3}),
    "OpenAIEditForm": obj(["image", "prompt"], image={"type": "string", "format": "binary"},
                          mask={"type": "string", "format": "binary"}, prompt=PROMPT, model=STR, n=OPENAI_N,
                          response_format={"type": "string", "enum": ["url", "b64_json"]},
                          output_format={"type": "string", "enum": ["png", "jpeg", "webp"]}, user=STR),
    "OpenAIImages": obj(["created", "data"], created=INT, data=array(obj(url=STR, b64_json=STR, revised_prompt=STR))),
    "OpenAIModels": obj(["object", "data"], object=STR, data=array(obj(["id", "object"], id=STR, object=STR,
                                                                       created=INT, owned_by=STR))),
}

# ------------------------------------------------------------------------------------------ ComfyUI
# An API-format graph: node id -> {class_type, inputs}. Which class types and inputs are valid is the backend's
# (its /object_info), which no schema here can list; a graph it refuses is a 400 (ComfyUI) or 422 (v2).
GRAPH: Schema = {"type": "object", "minProperties": 1, "description": "an API-format graph",
                 "additionalProperties": obj(["class_type", "inputs"], class_type={"type": "string", "minLength": 1},
                                             inputs=OBJ, _meta=OBJ)}
QUEUE_ITEM: Schema = {"type": "array", "description": "[number, prompt_id, graph, extra_data, outputs]"}
COMFY: dict[str, Schema] = {
    "ComfyPromptBody": obj(["prompt"], prompt=GRAPH,
                           client_id=STR, prompt_id=STR, extra_data=OBJ, front=BOOL, number=NUM),
    "ComfyQueued": obj(["prompt_id", "number", "node_errors"], prompt_id=STR, number=NUM, node_errors=OBJ),
    "ComfyQueueInfo": obj(["exec_info"], exec_info=obj(["queue_remaining"], queue_remaining=INT)),
    "ComfyQueue": obj(["queue_running", "queue_pending"], queue_running=array(QUEUE_ITEM),
                      queue_pending=array(QUEUE_ITEM)),
    "ComfyDeleteBody": obj(delete=STRINGS, clear=BOOL),
    "ComfyInterruptBody": obj(prompt_id=STR),
    "ComfyFreeBody": obj(unload_models=BOOL, free_memory=BOOL),
    "ComfyHistory": {"type": "object", "additionalProperties": obj(["prompt", "outputs", "status"],
                                                                   prompt=QUEUE_ITEM, outputs=OBJ, status=OBJ,
                                                                   meta=OBJ)},
    "ComfySystemStats": obj(["system", "devices"], system=obj(comfyui_version=STR), devices=array(OBJ)),
    "ComfyObjectInfo": {"type": "object", "additionalProperties": obj(["input", "output"], input=OBJ,
                                                                      output={"type": "array"})},
    "ComfyUploaded": obj(["name", "subfolder", "type"], name=STR, subfolder=STR, type=STR),
    "ComfyUploadForm": obj(["image"], image={"type": "string", "format": "binary"}, overwrite=FORM_BOOL,
                           type={"type": "string", "enum": ["input", "temp", "output"]}, subfolder=STR),
}

# ------------------------------------------------------------------------------------------ Comfy API v2
V2_OUTPUT = obj(["node_id", "name", "type", "content_type", "size_bytes", "id", "url", "url_expires_at"],
                node_id=STR, name=STR, type=STR, content_type=STR, size_bytes=INT, id=STR, hash=nullable(STR),
                url=STR, url_expires_at=STR, job_id=nullable(STR))
PARTNER_KEY: Schema = {"type": "string", "nullable": True, "pattern": "^[\\x21-\\x7e]{1,512}$",
                       "description": "a Comfy API key for partner nodes, used for this run only"}
_V2_STATUS = "(queued|running|succeeded|canceling|canceled|failed|expired)"
# A list as multipart fields: the field repeated, or given once (one text: what any scalar becomes on the wire).
FORM_STRINGS: Schema = {"anyOf": [STRINGS, STR]}
V2: dict[str, Schema] = {
    "V2Error": obj(["error"], error=obj(["code", "message"], code=STR, message=STR, details=nullable(OBJ))),
    # As rules.submission takes it: metadata labels (keys 1-40 of A-Z a-z 0-9 _ - ., values of at most 256
    # bytes without control or bidirectional characters); extra_data's one field is the caller's partner-node
    # key (rules._extra_data); webhook_url and inputs are reserved.
    "V2JobBody": obj(["workflow"], workflow=GRAPH,
                     metadata={"type": "object", "maxProperties": 16, "additionalProperties": False,
                               "patternProperties": {"^[A-Za-z0-9_.-]{1,40}$": {
                                   "type": "string", "maxLength": 64,
                                   "pattern": "^[^\\x00-\\x1f\\x7f-\\x9f\\u202a-\\u202e\\u2066-\\u2069]*$"}}},
                     extra_data={**obj(api_key_comfy_org=PARTNER_KEY), "additionalProperties": False},
                     webhook_url={"not": {}}, inputs={"not": {}}),
    "V2Job": obj(["id", "status", "created_at", "started_at", "completed_at", "expires_at", "queue_position",
                  "progress", "outputs", "error", "urls"],
                 id=STR, status=STR, created_at=STR, started_at=nullable(STR), completed_at=nullable(STR),
                 expires_at=STR, queue_position=nullable(INT), progress=nullable(OBJ), outputs=array(V2_OUTPUT),
                 error=nullable(OBJ), outputs_reused=BOOL, metrics=OBJ, metadata=OBJ,
                 urls=obj(["self", "events", "cancel"], self=STR, events=STR, cancel=STR)),
    "V2JobList": obj(["jobs"], jobs=array(obj(["id", "status"], id=STR, status=STR, create_time=STR,
                                              update_time=STR, metadata=OBJ)), next_cursor=STR),
    "V2Asset": obj(["id", "hash", "size_bytes", "content_type", "created_at", "url", "url_expires_at"],
                   id=STR, hash=nullable(STR), size_bytes=INT, content_type=STR, file_path=nullable(STR),
                   created_new=BOOL, created_at=STR, url=STR, url_expires_at=STR, expires_at=nullable(STR),
                   job_id=nullable(STR)),
    "V2AssetForm": obj(["file"], file={"type": "string", "format": "binary"}, file_path=STR, content_type=STR,
                       expected_hash=STR, tags=FORM_STRINGS),
    "V2FromHash": obj(["hash"], hash={"type": "string", "pattern": "^blake3:[0-9a-f]{64}$"}, file_path=STR,
                      tags=STRINGS),
    "V2Health": obj(["status"], status=STR, backends=INT),
    # GET /jobs' filters, as rules.list_query takes them: statuses comma-separated (blanks ignored); a cursor
    # is `<created>~<job id>` (rules.make_cursor), the next_cursor of the page before.
    "V2StatusFilter": {"type": "string", "pattern": f"^\\s*({_V2_STATUS}\\s*)?(,\\s*({_V2_STATUS}\\s*)?)*$"},
    "V2Cursor": {"type": "string", "pattern": "^([0-9]{1,12}(\\.[0-9]{1,20})?~[A-Za-z0-9_-]{1,64})?$"},
    "V2Workflow": obj(["workflow", "format"], workflow=OBJ, format={"type": "string", "enum": ["api", "save"]}),
}


def file_responses() -> dict[str, Schema]:
    """Named responses, for `spec.components.response`: a stored file (a picture, a video, a sound...) whole,
    and a range of it, in every type the cache serves (storage/media.py)."""
    binary = {"schema": {"type": "string", "format": "binary"}}
    content = {kind: binary for kind in dict.fromkeys(FILE_TYPES.values())}
    return {"StoredFile": {"description": "the file, as the kind it is (a picture, a video, a sound...)",
                           "content": content},
            "StoredFileRange": {"description": "the range asked for (Range: bytes=...)", "content": content}}


def components() -> dict[str, Schema]:
    """Every named schema, for `spec.components.schema`."""
    return {**ERRORS, **LINKPIX, **BODIES, **A1111, **OPENAI, **COMFY, **V2}


# The error shape of each blueprint (the fronts answer in their tools' shapes).
ERROR_SCHEMA_OF = {"a1111": "A1111Error", "openai": "OpenAIError", "comfy": "ComfyError", "comfy_v2": "V2Error"}
