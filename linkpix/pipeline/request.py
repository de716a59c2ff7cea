"""Stage 1: a URL (path + query) or a JSON body becomes one typed `GenerationRequest`.

This module checks what can be checked without the shared files: the shape of every field, names
(user, workflow, styles) against their syntax, the seed policy, the output format and the input images.
Checks that need the current files (does this style exist, is 5000 a valid width for this parameter,
does the backend have that model) happen in `resolver.py`, against the files as they are at that moment.
Values of workflow parameters stay raw here (strings from a URL, typed values from JSON); the resolver
converts them with the definitions in `data/placeholders.json`.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable, Mapping
from typing import Any

from linkpix.errors import BadRequest, ImageTooLarge
from linkpix.model import (
    CHAR_NAME_RE,
    MAX_INPUT_IMAGE_BYTES,
    PARAM_NAME_RE,
    SEED_MAX,
    STYLE_NAME_RE,
    GenerationRequest,
    InputImage,
    make_input_image,
    validate_user,
    validate_workflow_name,
)
from linkpix.render.placeholders import whole_number

OUTPUT_FORMATS = {"png": "png", "jpeg": "jpeg", "jpg": "jpeg", "webp": "webp"}
MAX_INPUT_IMAGES = 4
MAX_STYLES = 8

# Pollinations.ai query parameters that mean nothing here; links written for it keep working.
DROPPED_PARAMS = frozenset({"nologo", "private", "nofeed", "enhance", "safe", "referrer", "token"})
# Keys with a meaning of their own (not workflow parameters).
_RESERVED = frozenset({"style", "styles", "seed", "workflow", "format", "user", "char"})
# URL spellings of canonical parameter names. Other aliases (SillyTavern's `scale`...) are defined in
# data/placeholders.json and mapped by the resolver, so that adding one needs no code change.
_URL_ALIASES = {"negative": "negative_prompt", "neg": "negative_prompt"}


def parse_styles(value: Any) -> tuple[str, ...] | None:
    """`"a,b"` or `["a", "b"]` -> ("a", "b"); empty -> None (use the default style)."""
    if value is None:
        return None
    if isinstance(value, str):
        items = value.split(",")
    elif isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
        items = list(value)
    else:
        raise BadRequest("style must be a name, a comma-separated list of names, or a list of names",
                         {"parameter": "style"})
    names = tuple(dict.fromkeys(s.strip() for s in items if s.strip()))  # a style applies once
    if len(names) > MAX_STYLES:
        raise BadRequest(f"at most {MAX_STYLES} styles at once (got {len(names)})", {"parameter": "style"})
    for s in names:
        if not STYLE_NAME_RE.match(s):
            raise BadRequest(f"invalid style name {s!r}", {"parameter": "style"})
    return names or None


def parse_seed(value: Any) -> tuple[int | None, bool]:
    """-> (seed, random). `random` or -1 ask for a fresh seed; absent/empty -> derived later."""
    if value is None or (isinstance(value, str) and not value.strip()):  # blank is not given, as empty is
        return None, False
    if isinstance(value, str) and value.strip().lower() == "random":
        return None, True
    number = whole_number(value)
    if number is None:
        raise BadRequest(f"seed must be an integer from 0 to {SEED_MAX}, or 'random' (got {value!r})",
                         {"parameter": "seed"})
    if number == -1:
        return None, True
    if not 0 <= number <= SEED_MAX:
        raise BadRequest(f"seed must be between 0 and {SEED_MAX}, or 'random' / -1 (got {number})",
                         {"parameter": "seed"})
    return number, False


def parse_format(value: Any) -> str | None:
    if value is None or value == "":
        return None
    fmt = OUTPUT_FORMATS.get(str(value).strip().lower())
    if fmt is None:
        raise BadRequest(f"unknown image format {value!r}: use png, jpeg or webp", {"parameter": "format"})
    return fmt


def check_text(value: str, name: str) -> str:
    """Free text that may travel on to ComfyUI, a file or a database: no NUL, no lone surrogate.

    A lone surrogate (JSON `"\\ud800"`) is not Unicode text: it cannot be encoded as UTF-8, so it would
    fail later, deep in the seed derivation or the job store, as a 500.
    """
    if "\x00" in value:
        raise BadRequest(f"{_label(name)} contains a NUL character", {"parameter": name})
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise BadRequest(f"{_label(name)} contains a lone surrogate ({value[exc.start]!r} at character "
                         f"{exc.start + 1}), which is not valid Unicode text", {"parameter": name}) from None
    return value


def _label(name: str) -> str:
    return "the prompt" if name == "prompt" else name


# How to send a prompt, in the words of each form of request.
PROMPT_HINTS = {"url": "put the text in the URL, e.g. /prompt/a%20red%20fox",
                "json": 'send the text in the "prompt" field, e.g. {"prompt": "a red fox"}'}


def _prompt(text: Any, form: str) -> str:
    if text is None:
        raise BadRequest(f"the prompt is missing: {PROMPT_HINTS[form]}", {"parameter": "prompt"})
    if not isinstance(text, str):
        raise BadRequest(f"prompt must be text (got {type(text).__name__})", {"parameter": "prompt"})
    if not text.strip():
        raise BadRequest(f"the prompt is empty: {PROMPT_HINTS[form]}", {"parameter": "prompt"})
    return check_text(text, "prompt")


def _put_param(params: dict[str, Any], key: str, value: Any) -> None:
    name = _URL_ALIASES.get(key, key)
    if not PARAM_NAME_RE.match(name):
        raise BadRequest(f"invalid parameter name {key!r}", {"parameter": key})
    if name in params and params[name] != value:
        raise BadRequest(f"parameter {name!r} is given twice with different values", {"parameter": name})
    if isinstance(value, str):
        check_text(value, name)
    params[name] = value


def _user(explicit: Any, caller: str) -> str:
    """The caller's (authenticated) user wins; a `user` field is honoured only for the anonymous caller."""
    if caller != "default" or explicit in (None, ""):
        return validate_user(caller)
    if not isinstance(explicit, str):
        raise BadRequest("user must be a name", {"parameter": "user"})
    return validate_user(explicit)


def single_values(pairs: Iterable[tuple[str, str]]) -> dict[str, str]:
    """A query string's (name, value) pairs as a dict; a name given twice is a 400 naming it.

    `width=512&width=768` has no right reading: taking the first (or the last) silently would give the
    client a picture it did not ask for.
    """
    out: dict[str, str] = {}
    for name, value in pairs:
        if name in out:
            raise BadRequest(f"query parameter {name!r} is given more than once; give it once",
                             {"parameter": name})
        out[name] = value
    return out


MAX_PARAMS = 200  # in a JSON body: a workflow has a few dozen; 500,000 unknown ones (9 MB) are an attack


def _check_count(count: int) -> None:
    if count > MAX_PARAMS:
        raise BadRequest(f"the request has {count} fields and parameters; at most {MAX_PARAMS} are accepted",
                         {"parameter": "params", "max": MAX_PARAMS})


def parse_query(text: str, query: Mapping[str, str], user: str) -> GenerationRequest:
    """A `/prompt/<text>?k=v...` request. Unknown keys stay in `params` (the resolver reports the ones
    the workflow does not use); Pollinations-only keys are dropped."""
    params: dict[str, Any] = {}  # a link's query is bounded by the URL's length (junk is ignored, and said)
    for key, value in query.items():
        if key in DROPPED_PARAMS or key in _RESERVED:
            continue
        _put_param(params, key, value)
    return _request(query, text, user, params, form="url")


def _request(fields: Mapping[str, Any], text: Any, user: str, params: dict[str, Any],
             images: tuple[InputImage, ...] = (), form: str = "json") -> GenerationRequest:
    """The fields both forms share (prompt, user, workflow, styles, seed, format), checked once."""
    workflow = fields.get("workflow")
    workflow = None if workflow == "" else workflow
    if workflow is not None and not isinstance(workflow, str):
        raise BadRequest("workflow must be a file name", {"parameter": "workflow"})
    seed, random_seed = parse_seed(fields.get("seed"))
    named = _user(fields.get("user"), user)
    return GenerationRequest(
        prompt=_prompt(text, form),
        user=named,
        workflow=validate_workflow_name(workflow) if workflow else None,
        styles=parse_styles(fields.get("style", fields.get("styles"))),
        params=params,
        seed=seed,
        random_seed=random_seed,
        output_format=parse_format(fields.get("format")),
        input_images=images,
        char=parse_char(fields.get("char")),
        char_owner=user if named != user else None,  # a `user` field names a cache folder, not whose characters
    )


def parse_char(value: Any) -> str | None:
    """`char=<name>`: a character profile's name (whether it exists is the resolver's question)."""
    if value in (None, ""):
        return None
    if not isinstance(value, str) or not CHAR_NAME_RE.match(value):
        raise BadRequest(f"invalid character name {value!r}: use 1-64 letters, digits, '.', '-' or '_'",
                         {"parameter": "char"})
    return value


_JSON_FIELDS = frozenset({"prompt", "params", "images", "image", "mask"}) | _RESERVED


def parse_json(body: Mapping[str, Any], user: str,
               max_image_bytes: int = MAX_INPUT_IMAGE_BYTES) -> GenerationRequest:
    """The JSON API: the same fields as the query, plus `params` (a dict), `images` (base64 strings
    or data: URLs) and `mask`. Workflow parameters may also be given at the top level (`"width": 768`)."""
    if not isinstance(body, Mapping):
        raise BadRequest("the request body must be a JSON object")
    params: dict[str, Any] = {}
    for key, value in body.items():
        if key in _JSON_FIELDS or key in DROPPED_PARAMS:
            continue
        _put_param(params, key, value)
    extra = body.get("params") or {}
    if not isinstance(extra, Mapping):
        raise BadRequest("params must be an object of parameter -> value", {"parameter": "params"})
    _check_count(len(body) + len(extra))
    for key, value in extra.items():
        _put_param(params, str(key), value)
    for value in params.values():
        if isinstance(value, dict | list):
            raise BadRequest("parameter values must be text, numbers or booleans")
    images = body.get("images")
    if images is None and body.get("image") is not None:
        images = [body["image"]]
    req = _request(body, body.get("prompt"), user, params, parse_images(images, max_image_bytes))
    if body.get("mask") not in (None, ""):
        mask = parse_images([body["mask"]], max_image_bytes, "mask")[0]
        req = GenerationRequest(**{**req.__dict__, "mask": mask})
    return req


def parse_images(images: Any, max_bytes: int = MAX_INPUT_IMAGE_BYTES,
                 parameter: str = "images") -> tuple[InputImage, ...]:
    """Base64 strings (optionally `data:image/...;base64,` URLs) -> InputImages."""
    if images in (None, [], ""):
        return ()
    if isinstance(images, str):
        images = [images]
    if not isinstance(images, list):
        raise BadRequest(f"{parameter} must be a list of base64 strings", {"parameter": parameter})
    if len(images) > MAX_INPUT_IMAGES:
        raise BadRequest(f"at most {MAX_INPUT_IMAGES} input images", {"parameter": parameter})
    out = []
    for i, item in enumerate(images):
        if not isinstance(item, str):
            raise BadRequest(f"image {i + 1} must be a base64 string", {"parameter": parameter})
        payload = item.split(",", 1)[1] if item.startswith("data:") and "," in item else item
        if len(payload) > max_bytes * 4 // 3 + 8:
            raise ImageTooLarge(f"image {i + 1} is larger than {max_bytes / 2**20:g} MiB (max_upload_mb)",
                                {"parameter": parameter})
        try:
            data = base64.b64decode("".join(payload.split()), validate=True)
        except (binascii.Error, ValueError):
            raise BadRequest(f"image {i + 1} is not valid base64", {"parameter": parameter}) from None
        out.append(make_input_image(data, i, max_bytes, parameter))
    return tuple(out)
