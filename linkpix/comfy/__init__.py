"""Talk to ComfyUI: `ComfyClient.run(graph, timeout)` returns the images a workflow produced.

Modules: `client` (the client), `transport` (HTTP), `stream` (the websocket reader), `waiters`
(per-prompt mailboxes), `events` (frame decoding), `failures` (error messages), `objectinfo`
(reading /object_info).
"""

from linkpix.comfy.client import ComfyClient, PromptLost
from linkpix.comfy.events import Event, OutputImage

__all__ = ["ComfyClient", "Event", "OutputImage", "PromptLost"]
