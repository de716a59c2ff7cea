"""LinkPix: turn a URL into an image rendered by ComfyUI.

Data flows one way: URL -> GenerationRequest (request.py) -> rendered workflow (workflows.py)
-> ComfyUI run (comfy/) -> cached image (cache.py) -> response (api.py).
"""

__version__ = "0.1.0"
