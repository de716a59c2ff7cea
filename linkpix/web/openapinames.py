"""The names this instance takes, written into /openapi.json: its workflows and its styles.

Whether `workflow=sdxl` or `style=anime` is valid depends on the files in `workflows/` and
`data/styles.json`, so a fixed document could only say "a string", and a client (or Schemathesis) sending
a well-formed unknown name got a 400 the document did not foretell. A schema marked
`x-linkpix-names: workflows | image-workflows | styles | style-list` gets, when the document is served,
the current names (an enum; for a comma-separated style list, a pattern built from them). The served
document is cached by the names it was made with, so it changes when a workflow or style comes or goes.
"""

from __future__ import annotations

import copy
import re
from typing import Any

MARK = "x-linkpix-names"
MAX_STYLES = 8  # pipeline/request.MAX_STYLES: more names in one list are a 400


def workflow_choices(names: list[str]) -> list[str]:
    """A workflow by file name or without `.json` (`sd15` is `sd15.json`); empty is the default one."""
    stems = [n[:-5] for n in names if n.endswith(".json")]
    return ["", *sorted(set(names) | set(stems))]


def style_list_pattern(names: list[str]) -> str:
    """Comma-separated style names with blanks around them (and empty items, which count for nothing)."""
    one = "(" + "|".join(re.escape(n) for n in sorted(names)) + ")" if names else "(?!)"
    item = f"\\s*({one}\\s*)?"
    return f"^{item}(,{item}){{0,{MAX_STYLES - 1}}}$"


def with_names(document: dict[str, Any], workflows: list[str], styles: list[str],
               image_workflows: list[str]) -> dict[str, Any]:
    """A copy of `document` whose marked schemas list the current names (`image-workflows`: the workflows
    that take an input image, for /edit)."""
    out = copy.deepcopy(document)
    choices = {"workflows": workflow_choices(workflows), "styles": ["", *sorted(styles)],
               "image-workflows": workflow_choices(image_workflows)}
    pattern = style_list_pattern(styles)

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            kind = node.get(MARK)
            if kind in choices:
                node["enum"] = choices[kind] + ([None] if node.get("nullable") else [])
            elif kind == "style-list":
                node["pattern"] = pattern
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(out)
    return out
