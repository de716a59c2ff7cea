"""LinkPix: turn a URL into an image rendered by ComfyUI.

Data flows one way: URL -> GenerationRequest (request.py) -> rendered job (resolver.py, render/)
-> ComfyUI run (comfy/, generator.py) -> stored image (storage/) -> response (web/).
"""

__version__ = "0.1.0"
