"""What the generator needs of a ComfyUI client and of the pool, as protocols.

The real ones live in `linkpix.comfy` (`ComfyClient`, `pool.Pool`); the pipeline depends only on these
shapes, so flights and the generator can name a backend without importing each other or the client.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from linkpix.comfy import Event, OutputImage
from linkpix.comfy.events import ImageRef
from linkpix.comfy.pool import NoBackend
from linkpix.errors import BackendUnavailable, LinkPixError

EventCallback = Callable[[Event], None]


class Backend(Protocol):
    """What the generator needs of a ComfyUI client (the real one is `linkpix.comfy.ComfyClient`)."""

    name: str

    def submit(self, graph: dict[str, Any], *, extra_data: dict[str, Any] | None = None) -> str: ...

    def wait(self, prompt_id: str, timeout: float, on_event: EventCallback | None = None, *,
             reattach: bool = False, budget: float | None = None) -> dict[str, Any]: ...

    def images(self, prompt_id: str, entry: dict[str, Any]) -> list[OutputImage]: ...

    def fetch_image(self, prompt_id: str, ref: ImageRef) -> OutputImage: ...

    def stop(self, prompt_id: str, reason: str) -> None: ...

    def upload_image(self, data: bytes, name: str, *, overwrite: bool = False,
                     subfolder: str = "") -> str: ...


class BackendPool(Protocol):
    """What the generator needs of the pool (the real one is `linkpix.comfy.pool.Pool`)."""

    def choose(self, graph: dict[str, Any], exclude: Any = ()) -> Any: ...

    def client(self, name: str) -> Any: ...

    def can_run(self, graph: dict[str, Any], exclude: Any = ()) -> bool: ...

    def reserve(self, client: Any) -> None: ...

    def finished(self, client: Any, seconds: float, error: LinkPixError | None = None) -> None: ...


def none_answers(last: BackendUnavailable, failed: dict[str, str]) -> NoBackend:
    """The 503 when every backend tried failed and nothing was queued: each one named (with both of two
    backends down, the last one's words alone hid the other), or the one's own words."""
    if len(failed) > 1:
        return NoBackend("no ComfyUI backend answers: " + "; ".join(failed.values()), {"backends": list(failed)})
    return NoBackend(last.message, last.details)
