"""Stage 2: merge a GenerationRequest with the shared files into one RenderedJob (work in progress)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .config import LoadedConfig
from .jsonstore import JsonStore
from .request import GenerationRequest, InputImage


@dataclass(frozen=True)
class RenderedJob:
    """Everything the generator needs to run one request, and everything the API reports back."""

    graph: dict[str, Any]
    workflow: str
    prompt: str
    negative: str
    seed: int
    seed_is_random: bool
    params: dict[str, Any]
    output_format: str
    uploads: tuple[InputImage, ...]
    ignored: tuple[str, ...]


class Resolver:
    """Request > workflow settings > user preferences > values in the workflow file."""

    def __init__(self, config: Callable[[], LoadedConfig], store: JsonStore,
                 object_info: Callable[[], dict | None]) -> None:
        self._config = config
        self._store = store
        self._object_info = object_info

    def resolve(self, req: GenerationRequest) -> RenderedJob:
        raise NotImplementedError

    def workflow_names(self) -> list[str]:
        raise NotImplementedError

    def describe_workflow(self, name: str) -> dict:
        raise NotImplementedError

    def styles(self) -> dict[str, dict]:
        raise NotImplementedError

    def fingerprint(self) -> object:
        raise NotImplementedError
