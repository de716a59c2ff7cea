"""HTTP routes of the simulator, mirroring ComfyUI 0.3.64's server.py handler by handler (and today's
where the profile says so: profiles.py).

Handlers do the same Python operations on the request JSON as ComfyUI, so malformed input fails the same
way: an unhandled exception becomes aiohttp's own `500 Internal Server Error` text body. Every route also
exists under `/api`. The CSRF guard of §1 is a middleware.
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import sys
import time
import urllib.parse
import uuid
from typing import TYPE_CHECKING, Any

from aiohttp import web

from linkpix.simulator import files, jobsapi
from linkpix.simulator.profiles import INVALID_PROMPT_ID, valid_job_id
from linkpix.simulator.wshub import SERVER_FEATURES

if TYPE_CHECKING:
    from linkpix.simulator.life import Life
    from linkpix.simulator.state import SimState

VERSION_SUFFIX = "-linkpix-simulator"


def is_loopback(host: str | None) -> bool:
    """Loopback check without DNS: IP literals and localhost names."""
    if host is None:
        return False
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost" or host.endswith(".localhost")


@web.middleware
async def origin_only_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    """403 when a browser on another origin talks to a loopback host (ComfyUI's CSRF guard)."""
    if "Host" in request.headers and "Origin" in request.headers:
        host_domain: str | None = request.headers["Host"].lower()
        parsed = urllib.parse.urlparse(request.headers["Origin"])
        origin_domain: str | None = parsed.netloc.lower()
        host_parsed = urllib.parse.urlsplit("//" + (host_domain or ""))
        loopback = is_loopback(host_parsed.hostname)
        try:
            origin_port = parsed.port
        except ValueError:
            origin_port = None
        try:
            host_port = host_parsed.port
        except ValueError:
            host_port = None
        if origin_port is None:
            host_domain = host_parsed.hostname
        if host_port is None:
            origin_domain = parsed.hostname
        if loopback and host_domain and origin_domain and host_domain != origin_domain:
            return web.Response(status=403)
    if request.method == "OPTIONS":
        return web.Response()
    return await handler(request)


def _ram() -> tuple[int, int]:
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        free = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")
        return int(total), int(free)
    except (ValueError, OSError, AttributeError):
        return 8 * 1024**3, 4 * 1024**3


def build_app(sim: SimState, life: Life) -> web.Application:
    """A fresh aiohttp app bound to the simulator's state and its current life (rebuilt on every listen)."""
    routes = web.RouteTableDef()
    q = life.queue

    @routes.get("/ws")
    async def websocket_handler(request: web.Request) -> web.StreamResponse:
        return await life.hub.handle(request, life.queue_info, life.executor.running_node)

    @routes.get("/system_stats")
    async def system_stats(request: web.Request) -> web.Response:
        total, free = _ram()
        return web.json_response({
            "system": {"os": os.name, "ram_total": total, "ram_free": free,
                       "comfyui_version": sim.profile.version + VERSION_SUFFIX,
                       "required_frontend_version": "1.27.10", "installed_templates_version": "0.1.95",
                       "required_templates_version": "0.1.95", "python_version": sys.version,
                       "pytorch_version": "none (LinkPix simulator)", "embedded_python": False,
                       "argv": ["linkpix-simulator", "--listen", sim.host, "--port", str(sim.port)]
                       + (["--name", sim.name] if sim.name else [])},
            "devices": [{"name": f"{sim.name + ': ' if sim.name else ''}LinkPix simulator (not AI)",
                         "type": "cpu", "index": None,
                         "vram_total": total, "vram_free": free, "torch_vram_total": total,
                         "torch_vram_free": free}]})

    @routes.get("/features")
    async def get_features(request: web.Request) -> web.Response:
        return web.json_response(dict(SERVER_FEATURES))

    @routes.get("/embeddings")
    async def get_embeddings(request: web.Request) -> web.Response:
        return web.json_response(sim.catalogue.embeddings())

    @routes.get("/models")
    async def list_model_types(request: web.Request) -> web.Response:
        return web.json_response(list(sim.catalogue.models))

    @routes.get("/models/{folder}")
    async def get_models(request: web.Request) -> web.Response:
        found = sim.catalogue.folder_files(request.match_info.get("folder", ""))
        if found is None:
            return web.Response(status=404)
        return web.json_response(found)

    @routes.get("/extensions")
    async def get_extensions(request: web.Request) -> web.Response:
        return web.json_response([])

    @routes.get("/object_info")
    async def get_object_info(request: web.Request) -> web.Response:
        return web.json_response(sim.catalogue.all_info())

    @routes.get("/object_info/{node_class}")
    async def get_object_info_node(request: web.Request) -> web.Response:
        node_class = request.match_info.get("node_class", "")
        info = sim.catalogue.class_info(node_class)
        return web.json_response({node_class: info} if info is not None else {})

    @routes.get("/prompt")
    async def get_prompt(request: web.Request) -> web.Response:
        return web.json_response(life.queue_info())

    @routes.get("/queue")
    async def get_queue(request: web.Request) -> web.Response:
        return web.json_response({"queue_running": q.running_items(), "queue_pending": q.pending_items()})

    @routes.post("/prompt")
    async def post_prompt(request: web.Request) -> web.Response:
        json_data = await request.json()
        if "number" in json_data:
            number: Any = float(json_data["number"])
        else:
            number = life.counter
            if "front" in json_data and json_data["front"]:
                number = -number
            life.counter += 1
        if "prompt" not in json_data:
            error = {"type": "no_prompt", "message": "No prompt provided", "details": "No prompt provided",
                     "extra_info": {}}
            return web.json_response({"error": error, "node_errors": {}}, status=400)
        prompt = json_data["prompt"]
        if not sim.profile.strict_prompt_id:
            prompt_id = str(json_data.get("prompt_id", uuid.uuid4()))
        elif json_data.get("prompt_id") is None:
            prompt_id = str(uuid.uuid4())
        elif valid_job_id(json_data["prompt_id"]):
            prompt_id = json_data["prompt_id"]
        else:
            return web.json_response({"error": INVALID_PROMPT_ID, "node_errors": {}}, status=400)
        partial = json_data.get("partial_execution_targets") if "partial_execution_targets" in json_data else None
        if sim.faults.validate_delay:
            await asyncio.sleep(sim.faults.validate_delay)
        valid = sim.validator.validate_prompt(prompt, partial)
        extra_data = json_data["extra_data"] if "extra_data" in json_data else {}
        if "client_id" in json_data:
            extra_data["client_id"] = json_data["client_id"]
        if not valid[0]:
            return web.json_response({"error": valid[1], "node_errors": valid[3]}, status=400)
        if sim.profile.create_time:
            extra_data["create_time"] = int(time.time() * 1000)
        q.put([number, prompt_id, prompt, extra_data, valid[2]])
        sim.stats.prompts_received += 1
        return web.json_response({"prompt_id": prompt_id, "number": number, "node_errors": valid[3]})

    @routes.post("/queue")
    async def post_queue(request: web.Request) -> web.Response:
        json_data = await request.json()
        if "clear" in json_data and json_data["clear"]:
            q.wipe_queue()
        if "delete" in json_data:
            for id_to_delete in json_data["delete"]:
                q.delete_queue_item(lambda a, target=id_to_delete: a[1] == target)
        return web.Response(status=200)

    @routes.post("/interrupt")
    async def post_interrupt(request: web.Request) -> web.Response:
        try:
            json_data = await request.json()
        except ValueError:
            json_data = {}
        prompt_id = json_data.get("prompt_id")
        if prompt_id:
            if any(item[1] == prompt_id for item in q.running_items()):
                life.executor.interrupt()
        else:
            life.executor.interrupt()
        return web.Response(status=200)

    @routes.post("/free")
    async def post_free(request: web.Request) -> web.Response:
        json_data = await request.json()
        unload_models = json_data.get("unload_models", False)
        free_memory = json_data.get("free_memory", False)
        if unload_models:
            q.set_flag("unload_models", unload_models)
        if free_memory:
            q.set_flag("free_memory", free_memory)
        return web.Response(status=200)

    @routes.get("/history")
    async def get_history(request: web.Request) -> web.Response:
        max_items = request.rel_url.query.get("max_items", None)
        offset = request.rel_url.query.get("offset", None)
        return web.json_response(q.get_history(max_items=int(max_items) if max_items is not None else None,
                                               offset=int(offset) if offset is not None else -1))

    @routes.get("/history/{prompt_id}")
    async def get_history_prompt_id(request: web.Request) -> web.Response:
        return web.json_response(q.get_history(prompt_id=request.match_info.get("prompt_id", "")))

    @routes.post("/history")
    async def post_history(request: web.Request) -> web.Response:
        json_data = await request.json()
        if "clear" in json_data and json_data["clear"]:
            q.wipe_history()
        if "delete" in json_data:
            for id_to_delete in json_data["delete"]:
                q.delete_history_item(id_to_delete)
        return web.Response(status=200)

    files.add_routes(routes, sim)
    if sim.profile.jobs_api:
        jobsapi.add_routes(routes, life)

    @web.middleware
    async def count_requests(request: web.Request, handler: Any) -> web.StreamResponse:
        resource = request.match_info.route.resource
        sim.stats.requests[f"{request.method} {resource.canonical if resource else request.path}"] += 1
        return await handler(request)

    app = web.Application(middlewares=[count_requests, origin_only_middleware], client_max_size=104857600)
    api_routes = web.RouteTableDef()
    for route in routes:
        if isinstance(route, web.RouteDef):
            api_routes.route(route.method, "/api" + route.path, **route.kwargs)(route.handler)
    app.add_routes(routes)
    app.add_routes(api_routes)
    return app
