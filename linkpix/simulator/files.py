"""File routes: GET /view, POST /upload/image, POST /upload/mask (ComfyUI 0.3.64 semantics; /view's
headers for files a browser could run as today's versions send them with `--profile current`).

Kept line-for-line close to ComfyUI's handlers because clients depend on their exact edge cases: 404 for
no filename, 400 for `..`, 403 for a subfolder escaping its folder, `name (1).ext` renaming, reuse of a
name when the bytes are identical, and the 500 for an unknown upload type.
"""

from __future__ import annotations

import hashlib
import json
import mimetypes
import os
from io import BytesIO
from pathlib import Path
from typing import Any

from aiohttp import web
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from linkpix.simulator.profiles import OLD_FORCED_DOWNLOAD, is_dangerous
from linkpix.simulator.state import SimState
from linkpix.simulator.validation import annotated_filepath
from linkpix.storage.jsonstore import atomic_write_bytes


def add_routes(routes: web.RouteTableDef, sim: SimState) -> None:
    dirs = {k: str(v) for k, v in sim.dirs.items()}

    def directory_by_type(kind: str) -> str | None:
        return dirs.get(kind)

    @routes.get("/view")
    async def view_image(request: web.Request) -> web.StreamResponse:
        query = request.rel_url.query
        if "filename" not in query:
            return web.Response(status=404)
        filename, annotated_dir = annotated_filepath(query["filename"], sim.dirs)
        if not filename:
            return web.Response(status=400)
        if filename[0] == "/" or ".." in filename:
            return web.Response(status=400)
        output_dir = str(annotated_dir) if annotated_dir is not None else directory_by_type(query.get("type", "output"))
        if output_dir is None:
            return web.Response(status=400)
        if "subfolder" in query:
            full_output_dir = os.path.join(output_dir, query["subfolder"])
            if os.path.commonpath((os.path.abspath(full_output_dir), output_dir)) != output_dir:
                return web.Response(status=403)
            output_dir = full_output_dir
        filename = os.path.basename(filename)
        file = os.path.join(output_dir, filename)
        if not os.path.isfile(file):
            return web.Response(status=404)
        disposition = {"Content-Disposition": f'filename="{filename}"'}
        if "preview" in query:
            with Image.open(file) as img:
                info = query["preview"].split(";")
                fmt = info[0]
                if fmt not in ("webp", "jpeg") or "a" in query.get("channel", ""):
                    fmt = "webp"
                quality = int(info[-1]) if info[-1].isdigit() else 90
                buf = BytesIO()
                out = img.convert("RGB") if fmt == "jpeg" or query.get("channel", "") == "rgb" else img
                out.save(buf, format=fmt, quality=quality)
            return web.Response(body=buf.getvalue(), content_type=f"image/{fmt}", headers=disposition)
        channel = query.get("channel", "rgba")
        if channel == "rgb":
            with Image.open(file) as img:
                if img.mode == "RGBA":
                    r, g, b, _ = img.split()
                    new_img = Image.merge("RGB", (r, g, b))
                else:
                    new_img = img.convert("RGB")
                buf = BytesIO()
                new_img.save(buf, format="PNG")
            return web.Response(body=buf.getvalue(), content_type="image/png", headers=disposition)
        if channel == "a":
            with Image.open(file) as img:
                alpha = img.split()[3] if img.mode == "RGBA" else Image.new("L", img.size, 255)
                alpha_img = Image.new("RGBA", alpha.size)
                alpha_img.putalpha(alpha)
                buf = BytesIO()
                alpha_img.save(buf, format="PNG")
            return web.Response(body=buf.getvalue(), content_type="image/png", headers=disposition)
        content_type = mimetypes.guess_type(filename)[0] or "application/octet-stream"
        if not sim.profile.view_attachment:
            if content_type in OLD_FORCED_DOWNLOAD:
                content_type = "application/octet-stream"
            return web.FileResponse(file, headers={**disposition, "Content-Type": content_type})
        return web.FileResponse(file, headers=_guarded_headers(filename, content_type, request))

    def dir_by_type(kind: Any) -> tuple[str, str]:
        if kind is None:
            kind = "input"
        if kind not in ("input", "temp", "output"):
            # ComfyUI 0.3.64 hits an UnboundLocalError here, which aiohttp turns into a 500.
            raise UnboundLocalError("cannot access local variable 'type_dir' where it is not associated with a value")
        return dirs[kind], kind

    def same_bytes(filepath: str, data: bytes) -> bool:
        if not os.path.exists(filepath):
            return False
        with open(filepath, "rb") as f:
            return hashlib.sha256(f.read()).hexdigest() == hashlib.sha256(data).hexdigest()

    def image_upload(post: Any, save_function: Any = None) -> web.Response:
        image = post.get("image")
        overwrite = post.get("overwrite")
        upload_dir, upload_type = dir_by_type(post.get("type"))
        if not (image and image.file):
            return web.Response(status=400)
        filename = image.filename
        if not filename:
            return web.Response(status=400)
        subfolder = post.get("subfolder", "")
        full_output_folder = os.path.join(upload_dir, os.path.normpath(subfolder))
        filepath = os.path.abspath(os.path.join(full_output_folder, filename))
        if os.path.commonpath((upload_dir, filepath)) != upload_dir:
            return web.Response(status=400)
        os.makedirs(full_output_folder, exist_ok=True)
        data = image.file.read()
        image.file.seek(0)
        base, ext = os.path.splitext(filename)
        duplicate = False
        if not (overwrite is not None and overwrite in ("true", "1")):
            i = 1
            while os.path.exists(filepath):
                if same_bytes(filepath, data):
                    duplicate = True
                    break
                filename = f"{base} ({i}){ext}"
                filepath = os.path.join(full_output_folder, filename)
                i += 1
        if not duplicate:
            if save_function is not None:
                save_function(data, post, filepath)
            else:
                atomic_write_bytes(Path(filepath), data)
        return web.json_response({"name": filename, "subfolder": subfolder, "type": upload_type})

    @routes.post("/upload/image")
    async def upload_image(request: web.Request) -> web.Response:
        return image_upload(await request.post())

    @routes.post("/upload/mask")
    async def upload_mask(request: web.Request) -> web.Response:
        post = await request.post()

        def save_mask(data: bytes, post: Any, filepath: str) -> None:
            # ComfyUI ignores failures here: the upload answers 200 and may write nothing.
            try:
                ref = json.loads(post.get("original_ref"))
                name, base = annotated_filepath(ref["filename"], sim.dirs)
                if not name or name[0] == "/" or ".." in name:
                    return
                out_dir = str(base) if base is not None else directory_by_type(ref.get("type", "output"))
                if out_dir is None:
                    return
                if ref.get("subfolder", "") != "":
                    full = os.path.join(out_dir, ref["subfolder"])
                    if os.path.commonpath((os.path.abspath(full), out_dir)) != out_dir:
                        return
                    out_dir = full
                original_file = os.path.join(out_dir, name)
                if not os.path.isfile(original_file):
                    return
                with Image.open(original_file) as original:
                    meta = PngInfo()
                    for key, value in getattr(original, "text", {}).items():
                        meta.add_text(key, value)
                    rgba = original.convert("RGBA")
                mask = Image.open(BytesIO(data)).convert("RGBA")
                rgba.putalpha(mask.getchannel("A"))
                buf = BytesIO()
                rgba.save(buf, format="PNG", compress_level=4, pnginfo=meta)
                atomic_write_bytes(Path(filepath), buf.getvalue())
            except Exception:
                return

        return image_upload(post, save_mask)


def _guarded_headers(filename: str, content_type: str, request: web.Request) -> dict[str, str]:
    """Today's /view for a plain file: anything a browser could run is a download (see profiles.py)."""
    safe = filename.replace("\\", "\\\\").replace('"', '\\"')
    headers = {"X-Content-Type-Options": "nosniff", "Content-Disposition": f'filename="{safe}"'}
    if is_dangerous(content_type):
        headers["Vary"] = "Sec-Fetch-Dest"
        headers["Cache-Control"] = "no-store"
        svg_in_img = (request.headers.get("Sec-Fetch-Dest") == "image"
                      and content_type.split(";", 1)[0].strip().lower() == "image/svg+xml")
        if not svg_in_img:
            content_type = "application/octet-stream"
            headers["Content-Disposition"] = f'attachment; filename="{safe}"'
    headers["Content-Type"] = content_type
    return headers
