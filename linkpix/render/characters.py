"""Character profiles in `data/characters.json`: the same face in every picture, by name.

A profile holds words (joined to the prompt), a negative, LoRAs with strengths, reference pictures (upload
ids), and optionally a style and a workflow. The file is one JSON document edited through the JsonStore
(read-modify-write under a file lock, written atomically), shaped
`{"users": {user: {name: profile}}, "shared": {name: profile}}`: each user sees their own profiles and the
shared ones an admin defined (their own win on a name clash); nobody sees another user's.

A profile's `version` is a hash of what it says: it changes with every edit that changes the profile, and
goes into the cache key of every picture that names the character.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from linkpix.errors import BadRequest, NotFound
from linkpix.render.loras import LoraUse, check_lora_name, check_strength
from linkpix.storage.jsonstore import JsonStore

CHARACTERS_FILE = "characters.json"
NAME_RE = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,63}$")
MAX_TEXT = 2000  # words / negative / description, characters
MAX_LORAS = 8
MAX_REFERENCES = 4
FIELDS = ("words", "negative", "loras", "references", "style", "workflow", "description")
SHARED = "shared"


@dataclass(frozen=True)
class Character:
    """One profile as a request uses it."""

    name: str
    words: str = ""
    negative: str = ""
    loras: tuple[LoraUse, ...] = ()
    references: tuple[str, ...] = ()  # upload ids
    style: str | None = None
    workflow: str | None = None
    description: str = ""
    shared: bool = False

    @property
    def version(self) -> str:
        basis = json.dumps(self.content(), sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(basis.encode("utf-8")).hexdigest()[:12]

    def content(self) -> dict[str, Any]:
        return {"words": self.words, "negative": self.negative, "loras": [u.to_dict() for u in self.loras],
                "references": list(self.references), "style": self.style, "workflow": self.workflow,
                "description": self.description}

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, **self.content(), "scope": SHARED if self.shared else "user",
                "version": self.version}


def check_name(name: Any, parameter: str = "char") -> str:
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise BadRequest(f"invalid character name {name!r}: use 1-64 letters, digits, '.', '-' or '_' (not "
                         "starting with '.')", {"parameter": parameter})
    return name


def _text(body: Mapping[str, Any], key: str) -> str:
    value = body.get(key, "")
    if value is None:
        return ""
    if not isinstance(value, str):
        raise BadRequest(f"{key} must be text", {"parameter": key})
    if len(value) > MAX_TEXT or "\x00" in value:
        raise BadRequest(f"{key} must be at most {MAX_TEXT} characters of text", {"parameter": key})
    return value.strip()


def _optional_name(body: Mapping[str, Any], key: str) -> str | None:
    value = body.get(key)
    if value in (None, ""):
        return None
    if not isinstance(value, str) or not re.match(r"^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,127}$", value) or ".." in value:
        raise BadRequest(f"{key} must be a name (letters, digits, '.', '-', '_')", {"parameter": key})
    return value


def _loras(value: Any) -> tuple[LoraUse, ...]:
    if value in (None, []):
        return ()
    if not isinstance(value, list) or len(value) > MAX_LORAS:
        raise BadRequest(f"loras must be a list of at most {MAX_LORAS} objects {{name, strength, clip_strength?}}",
                         {"parameter": "loras"})
    out = []
    for i, item in enumerate(value):
        if isinstance(item, str):
            item = {"name": item}
        if not isinstance(item, Mapping) or set(item) - {"name", "strength", "clip_strength"}:
            raise BadRequest(f"loras[{i}] must be an object with name, strength and optionally clip_strength",
                             {"parameter": "loras"})
        name = check_lora_name(item.get("name"), "loras")
        strength = check_strength(item.get("strength", 1.0), f"the strength of LoRA {name}")
        clip = item.get("clip_strength")
        out.append(LoraUse(name, strength,
                           None if clip is None else check_strength(clip, f"the clip_strength of LoRA {name}")))
    if len({u.name for u in out}) != len(out):
        raise BadRequest("a LoRA is listed twice in loras", {"parameter": "loras"}, rule="unique_names")
    return tuple(out)


def _references(value: Any) -> tuple[str, ...]:
    if value in (None, []):
        return ()
    if not isinstance(value, list) or len(value) > MAX_REFERENCES or not all(isinstance(v, str) for v in value):
        raise BadRequest(f"references must be a list of at most {MAX_REFERENCES} upload ids (from POST /uploads)",
                         {"parameter": "references"})
    for v in value:
        if not re.match(r"^linkpix_[0-9a-f]{16}\.(png|jpg|gif|webp)$", v):
            raise BadRequest(f"reference {v!r} is not an upload id (linkpix_<hash>.<ext>, from POST /uploads)",
                             {"parameter": "references"})
    return tuple(dict.fromkeys(value))


def parse_profile(name: str, body: Any, shared: bool = False) -> Character:
    """A PUT body -> Character; 400 naming the first bad field (unknown fields are refused, not dropped)."""
    if not isinstance(body, Mapping):
        raise BadRequest("send the character as a JSON object with " + ", ".join(FIELDS))
    unknown = sorted(set(body) - set(FIELDS) - {"name", "scope", "version"})
    if unknown:
        raise BadRequest(f"unknown field(s) {', '.join(map(repr, unknown))}; a character has: {', '.join(FIELDS)}",
                         {"allowed": list(FIELDS)})
    return Character(name=check_name(name, "name"), words=_text(body, "words"), negative=_text(body, "negative"),
                     loras=_loras(body.get("loras")), references=_references(body.get("references")),
                     style=_optional_name(body, "style"), workflow=_optional_name(body, "workflow"),
                     description=_text(body, "description"), shared=shared)


class CharacterStore:
    """Reads and edits `data/characters.json` for one user at a time (see the module docstring)."""

    def __init__(self, store: JsonStore, data_dir: Path) -> None:
        self._store = store
        self.path = Path(data_dir) / CHARACTERS_FILE

    def _doc(self) -> Mapping[str, Any]:
        doc = self._store.get(self.path, default={})
        return doc if isinstance(doc, Mapping) else {}

    def _scope(self, doc: Mapping[str, Any], user: str | None) -> Mapping[str, Any]:
        scope = doc.get(SHARED) if user is None else (doc.get("users") or {}).get(user)
        return scope if isinstance(scope, Mapping) else {}

    def visible(self, user: str) -> dict[str, Character]:
        """Name -> profile, for `user`: the shared ones, then their own over them."""
        doc = self._doc()
        out: dict[str, Character] = {}
        for shared, scope in ((True, self._scope(doc, None)), (False, self._scope(doc, user))):
            for name, body in scope.items():
                try:
                    kept = {k: v for k, v in body.items() if k != "updated"} if isinstance(body, Mapping) else body
                    out[name] = parse_profile(name, kept, shared)
                except BadRequest:
                    continue  # a hand-edited entry gone wrong: not offered, the others still are
        return out

    def find(self, user: str, name: str) -> Character | None:
        """The profile `name` as `user` sees it, or None (only that one is parsed: a link pays for one
        profile, not for all of them)."""
        check_name(name)
        doc = self._doc()
        for shared, scope in ((False, self._scope(doc, user)), (True, self._scope(doc, None))):
            body = scope.get(name)
            if isinstance(body, Mapping):
                try:
                    return parse_profile(name, {k: v for k, v in body.items() if k != "updated"}, shared)
                except BadRequest:
                    return None  # a hand-edited entry gone wrong: as if it were not there
        return None

    def get(self, user: str, name: str) -> Character:
        """The profile `name` as `user` sees it; 404 naming the ones they can use."""
        found = self.find(user, name)
        if found is None:
            raise NotFound(self.unknown(user, name), {"parameter": "name", "allowed": sorted(self.visible(user))})
        return found

    def unknown(self, user: str, name: str) -> str:
        """The message for a name `user` cannot use: theirs and the shared ones, nobody else's."""
        names = sorted(self.visible(user))
        return (f"no character {name!r}; yours and the shared ones: {', '.join(names) or 'none'} "
                "(define one with PUT /api/characters/<name>)")

    def put(self, user: str, character: Character) -> bool:
        """Store (in `user`'s scope, or the shared one); True when it is new."""
        created = []

        def edit(doc: Any) -> Any:
            doc = doc if isinstance(doc, dict) else {}
            scope = doc.setdefault(SHARED, {}) if character.shared else \
                doc.setdefault("users", {}).setdefault(user, {})
            created.append(character.name not in scope)
            scope[character.name] = {**character.content(), "updated": round(time.time(), 3)}
            return doc

        self._store.update(self.path, edit, default={})
        return created[0]

    def delete(self, user: str, name: str, shared: bool = False) -> bool:
        """Remove one profile from `user`'s scope (or the shared one); False when it was not there."""
        check_name(name)
        gone = []

        def edit(doc: Any) -> Any:
            doc = doc if isinstance(doc, dict) else {}
            scope = doc.get(SHARED, {}) if shared else doc.get("users", {}).get(user, {})
            gone.append(scope.pop(name, None) is not None)
            return doc

        self._store.update(self.path, edit, default={})
        return gone[0]


def referenced_uploads(data_dir: Path) -> set[str]:
    """Every upload id a profile (anyone's) names as a reference: retention must keep those pictures. Read
    straight from the file, leniently: a broken file keeps nothing back (and is reported where it is used)."""
    try:
        doc = json.loads((Path(data_dir) / CHARACTERS_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return set()
    scopes = [doc.get(SHARED)] + list((doc.get("users") or {}).values()) if isinstance(doc, dict) else []
    found: set[str] = set()
    for scope in scopes:
        for body in (scope or {}).values() if isinstance(scope, dict) else ():
            refs = body.get("references") if isinstance(body, dict) else None
            found.update(r for r in refs or () if isinstance(r, str))
    return found
