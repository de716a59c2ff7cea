"""/api/characters: define, read and remove character profiles (see render/characters.py and docs/characters.md).

With `network_access` on every route needs a key and works in its user's scope: another user's profile is a
404, and no listing or message names it. `?scope=shared` (or `"scope": "shared"` in the body) edits the
shared profiles every user can name: that takes a key from `admin_keys` (or, with `network_access` off, no
key at all: then every caller is on this machine).
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify, request

from linkpix.errors import BadRequest, Forbidden, NotFound
from linkpix.render.characters import SHARED, Character, check_name, parse_profile
from linkpix.render.loras import match_lora
from linkpix.web.auth import Caller, identify, require
from linkpix.web.errors import no_store
from linkpix.web.services import services
from linkpix.web.uploads import owned_upload

bp = Blueprint("characters", __name__)


def character_owner() -> str:
    """Whose characters a request may name: the key's user, or `default` without a key. A link's `?user=`
    (or a body's `user` field) picks a cache folder, and anyone can type `?user=ann`."""
    return identify().user


def _shared(body: Any = None) -> bool:
    in_body = body.get("scope") if isinstance(body, dict) else None
    for given in (request.args.get("scope"), in_body):  # both checked: the query wins, a bad body is no less bad
        if given is not None and given not in ("user", SHARED):
            raise BadRequest(f"scope must be 'user' or 'shared' (got {given!r})", {"parameter": "scope"})
    return (request.args.get("scope") or in_body or "user") == SHARED


def _may_share(who: Caller) -> None:
    if not (who.admin or (not who.keyed and not services().config.settings.network_access)):
        raise Forbidden("shared characters are defined with a key from admin_keys", {"parameter": "scope"})


@bp.get("/api/characters")
def list_characters() -> Response:
    """Your character profiles and the shared ones.
    ---
    get:
      summary: Character profiles the caller can name with char=
      responses:
        200:
          description: "characters: yours and the shared ones (yours win on a name)"
          content: {application/json: {schema: CharacterList}}
        401: {description: "network_access is on and no valid API key was sent"}
    """
    who = require("listing characters")
    found = services().resolver.characters().visible(who.user)
    return no_store(jsonify({"characters": [c.to_dict() for _, c in sorted(found.items())]}))


@bp.get("/api/characters/<name>")
def get_character(name: str) -> Response:
    """One character profile.
    ---
    get:
      summary: A character profile (words, negative, LoRAs, references, style, workflow, version)
      parameters:
        - {in: path, name: name, required: true, schema: {type: string, pattern: "^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,63}$"}}
      responses:
        200:
          description: "the profile"
          content: {application/json: {schema: Character}}
        400: {description: "an invalid name"}
        401: {description: "network_access is on and no valid API key was sent"}
        404: {description: "no such character among yours and the shared ones"}
    """
    who = require("reading characters")
    return no_store(jsonify(services().resolver.characters().get(who.user, name).to_dict()))


@bp.put("/api/characters/<name>")
def put_character(name: str) -> Response:
    """Create or replace a character profile.
    ---
    put:
      summary: "Define a character: words, negative, loras [{name, strength}], references (upload ids), style, workflow"
      parameters:
        - {in: path, name: name, required: true, schema: {type: string, pattern: "^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,63}$"}}
        - {in: query, name: scope, required: false, schema: {type: string, enum: [user, shared]}}
      requestBody:
        required: true
        content:
          application/json: {schema: CharacterBody}
      responses:
        200:
          description: "replaced"
          content: {application/json: {schema: Character}}
        201:
          description: "created"
          content: {application/json: {schema: Character}}
        400: {description: "a bad field, an unknown style, workflow, LoRA or upload id; the message says which"}
        401: {description: "network_access is on and no valid API key was sent"}
        403: {description: "scope=shared without an admin key"}
        404: {description: "a reference names no upload of yours"}
    """
    who = require("defining characters")
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise BadRequest("send the character as a JSON object (Content-Type: application/json)")
    shared = _shared(body)
    if shared:
        _may_share(who)
    character = parse_profile(check_name(name, "name"), body, shared)
    _check_exists(character)
    created = services().resolver.characters().put(who.user, character)
    resp = jsonify(character.to_dict())
    resp.status_code = 201 if created else 200
    return no_store(resp)


@bp.delete("/api/characters/<name>")
def delete_character(name: str) -> Response:
    """Remove a character profile.
    ---
    delete:
      summary: Remove one of your character profiles (scope=shared, with an admin key, a shared one)
      parameters:
        - {in: path, name: name, required: true, schema: {type: string, pattern: "^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,63}$"}}
        - {in: query, name: scope, required: false, schema: {type: string, enum: [user, shared]}}
      responses:
        204: {description: "removed"}
        400: {description: "an invalid name or scope"}
        401: {description: "network_access is on and no valid API key was sent"}
        403: {description: "scope=shared without an admin key"}
        404: {description: "no such character in that scope"}
    """
    who = require("removing characters")
    shared = _shared()
    if shared:
        _may_share(who)
    if not services().resolver.characters().delete(who.user, check_name(name, "name"), shared):
        raise NotFound(f"no character {name!r} in {'the shared scope' if shared else 'your characters'}",
                       {"parameter": "name"})
    return no_store(Response(status=204))


def _check_exists(character: Character) -> None:
    """What a profile names must exist now: the style, the workflow, the uploads, the LoRAs (when a backend
    answers; the backends' lists may change later, and a request then says what is missing)."""
    resolver = services().resolver
    if character.style is not None and character.style not in resolver.styles():
        raise BadRequest(f"unknown style {character.style!r}; available: {', '.join(sorted(resolver.styles()))}",
                         {"parameter": "style", "allowed": sorted(resolver.styles())})
    if character.workflow is not None:
        names = resolver.workflow_names()
        if character.workflow not in names and character.workflow + ".json" not in names:
            raise BadRequest(f"unknown workflow {character.workflow!r}; available: {', '.join(names)}",
                             {"parameter": "workflow", "allowed": names})
    for ref in character.references:
        owned_upload(ref, "references")  # 404 naming it when it is not there, or not the caller's (issue 20)
    files = resolver.lora_files()
    for use in character.loras:
        match_lora(use.name, files)
