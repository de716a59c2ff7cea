"""LinkPix: turn a URL into an image rendered by ComfyUI.

Data flows one way: URL or JSON -> `GenerationRequest` (pipeline/request.py) -> `RenderedJob`
(pipeline/resolver.py, with render/) -> a ComfyUI run (pipeline/generator.py over comfy/) -> stored image
(storage/) -> response (web/). The rooms, lowest first: `errors`; `imaging/` (pixels) and `ops/` (metrics,
rate limits); `model` (the values that travel) and `config` (the typed settings); `comfy/` and `storage/`;
`render/`; `pipeline/`; `edit/` and `jobs/` on top of it (the jobs with `replicas/`, the Redis pieces);
`web/`, `dashboard/` and `run/` (the processes) at the top. `simulator/` (a fake ComfyUI for tests and
demo mode) uses only `imaging/`, `storage/`'s atomic writes and, as a process, `run/lifeline`.
"""

__version__ = "0.1.0"
