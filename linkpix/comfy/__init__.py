"""Talk to ComfyUI: `ComfyClient.run(graph, timeout)` returns the images a workflow produced.

Modules: `client` (the client), `follow` (waiting for a prompt), `queue` (queue control: list, dequeue,
interrupt, cancel), `transport` (HTTP, timeouts), `health` (is it answering?), `keeper` (the background
thread per backend), `infocache` (the cached /object_info), `stops` (the durable stop list),
`stream` (the websocket reader), `waiters` (per-prompt mailboxes), `events` (frame decoding), `failures`
(error messages), `objectinfo` (reading /object_info), `routing` (model files, merged object_info, the
choice), `pool` (several backends: `Pool.choose(graph)`).
"""

from linkpix.comfy.client import ClientClosed, ComfyClient, PromptLost
from linkpix.comfy.events import Event, OutputImage

__all__ = ["ClientClosed", "ComfyClient", "Event", "OutputImage", "PromptLost"]
