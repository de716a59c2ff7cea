"""LinkPix: turn a URL into an image rendered by ComfyUI.

Data flows one way: URL or JSON -> `GenerationRequest` (pipeline/request.py) -> `RenderedJob`
(pipeline/resolver.py, with render/) -> a ComfyUI run (pipeline/generator.py over comfy/) -> stored image
(storage/) -> response (web/). The rooms, lowest first: `errors`, `model` (the values that travel) and
`config` (the typed settings); `imaging/`, `render/`, `storage/`, `comfy/`, `ops/` below `pipeline/`;
`edit/` and `jobs/` on top of it; `replicas/` (Redis) beside them; `web/`, `dashboard/` and `run/` (the
processes) at the top; `simulator/` stands alone (a fake ComfyUI for tests and demo mode).
"""

__version__ = "0.1.0"
