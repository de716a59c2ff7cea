"""The live state the fronts keep per app (runs in progress, ComfyUI prompts and sockets)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flask import current_app

from linkpix.web.fronts.a1111.runs import A1111Runs

EXTENSION = "linkpix.fronts"


@dataclass
class FrontState:
    a1111: A1111Runs
    comfy: Any = None  # ComfyFront, set by register()


def front_state() -> FrontState:
    return current_app.extensions[EXTENSION]
