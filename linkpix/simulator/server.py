"""SimulatorServer: a ComfyUI-compatible aiohttp server on loopback, run in a background thread.

The server owns one event loop in its own thread. A `Life` holds everything ComfyUI forgets when it
restarts (queue, history, node cache, counter, websockets); `restart()` replaces it, `pause()`/`resume()`
only stop and restart listening on the same port so clients see "connection refused" meanwhile, and
`freeze()`/`thaw()` stop the whole server as `kill -STOP` / `kill -CONT` would: connections are still
accepted (by the kernel), nothing is answered, and whatever arrived meanwhile is handled after the thaw.

Pools of simulators are told apart by `name` (in /system_stats) and by their model lists (`checkpoints`,
`unets`, `loras`: what /object_info and /models list); `run_delay` adds seconds to every run that
executes nodes, like a model's real work.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from aiohttp import web

from linkpix.simulator.catalogue import DATA_DIR, Catalogue
from linkpix.simulator.executor import Executor, Stats
from linkpix.simulator.jobqueue import PromptQueue
from linkpix.simulator.profiles import DEFAULT as DEFAULT_PROFILE
from linkpix.simulator.profiles import Profile, get_profile
from linkpix.simulator.routes import build_app
from linkpix.simulator.validation import Validator
from linkpix.simulator.wshub import WebSocketHub

log = logging.getLogger("linkpix.simulator")


class Faults:
    """Fault-injection settings, read at each use by the running simulator."""

    def __init__(self, server: SimulatorServer, step_delay: float) -> None:
        self._server = server
        self.step_delay: float = float(step_delay)
        self.run_delay: float = 0.0  # seconds of (interruptible) work added to every run that executes nodes
        self.fail_class: str | None = None
        self.hang: bool = False
        self.frozen = threading.Event()  # set by SimulatorServer.freeze(): node work stands still too
        # Extension: seconds of uninterruptible work added to every node that really runs (a slow
        # ImageBlur, say), so interrupts landing at node boundaries can be tested.
        self.node_delay: float = 0.0

    def drop_websockets(self) -> None:
        """Close every open websocket now, from the server side."""
        self._server._call(self._server._life.hub.close_all())


class Life:
    """One run of 'ComfyUI': state that a restart forgets."""

    def __init__(self, server: SimulatorServer) -> None:
        self.hub = WebSocketHub()
        self.queue = PromptQueue(self.queue_updated)
        self.counter = 0
        self.executor = Executor(server, self)
        self.worker: asyncio.Task[None] | None = None

    def queue_info(self) -> dict[str, Any]:
        return {"exec_info": {"queue_remaining": self.queue.remaining()}}

    def queue_updated(self) -> None:
        self.hub.send("status", {"status": self.queue_info()})

    def start(self) -> None:
        self.hub.start()
        self.worker = asyncio.get_running_loop().create_task(self.executor.worker_loop())

    async def close(self) -> None:
        self.executor.abandon()
        if self.worker is not None:
            self.worker.cancel()
            try:
                await self.worker
            except (asyncio.CancelledError, Exception):
                pass
        await self.hub.close()


class SimulatorServer:
    """A real HTTP + websocket server that speaks ComfyUI 0.3.64's protocol (see module docstring)."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, root: Path | None = None,
                 step_delay: float = 0.0, models: dict[str, list[str]] | None = None,
                 preview_method: str = "auto", *, name: str = "", checkpoints: list[str] | None = None,
                 unets: list[str] | None = None, loras: list[str] | None = None,
                 run_delay: float = 0.0, profile: str = DEFAULT_PROFILE) -> None:
        self.host = host
        self.name = name
        self.profile: Profile = get_profile(profile)  # which ComfyUI it plays (profiles.py)
        self.port = int(port)
        self._own_root = root is None
        self.root = Path(tempfile.mkdtemp(prefix="linkpix-sim-") if root is None else root).resolve()
        self.dirs = {"input": self.root / "input", "output": self.root / "output", "temp": self.root / "temp"}
        self.preview_method = preview_method
        self.faults = Faults(self, step_delay)
        self.faults.run_delay = float(run_delay)
        self.stats = Stats()
        models = dict(models or {})
        for folder, files in (("checkpoints", checkpoints), ("diffusion_models", unets), ("loras", loras)):
            if files is not None:
                models[folder] = list(files)
        self._models = models or None
        self._thawed = threading.Event()
        self._thawed.set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._life: Life = None  # type: ignore[assignment]
        self._pool: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()
        self.catalogue: Catalogue = None  # type: ignore[assignment]
        self.validator: Validator = None  # type: ignore[assignment]

    # -- public counters -------------------------------------------------------------------
    @property
    def prompts_received(self) -> int:
        return self.stats.prompts_received

    @property
    def prompts_executed(self) -> int:
        return self.stats.prompts_executed

    @property
    def nodes_executed(self) -> int:
        return self.stats.nodes_executed

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    # -- lifecycle -------------------------------------------------------------------------
    def _prepare_dirs(self) -> None:
        for d in self.dirs.values():
            d.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(self.dirs["temp"], ignore_errors=True)  # ComfyUI wipes temp at startup
        self.dirs["temp"].mkdir(parents=True, exist_ok=True)
        example = self.dirs["input"] / "example.png"
        if not example.exists():
            shutil.copyfile(DATA_DIR / "example.png", example)

    def start(self) -> None:
        """Start the loop thread and listen; returns once the port accepts connections."""
        with self._lock:
            if self._thread is not None:
                return
            self._prepare_dirs()
            self.catalogue = Catalogue(self.dirs["input"], self._models)
            self.validator = Validator(self.catalogue, self.dirs)
            self._loop = asyncio.new_event_loop()
            self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="sim-node")
            ready = threading.Event()
            self._thread = threading.Thread(target=self._run_loop, args=(ready,), name="linkpix-simulator",
                                            daemon=True)
            self._thread.start()
            ready.wait()
            try:
                self._call(self._boot())
            except BaseException:
                self._shutdown_thread()
                raise

    def _run_loop(self, ready: threading.Event) -> None:
        assert self._loop is not None
        asyncio.set_event_loop(self._loop)
        self._loop.call_soon(ready.set)
        self._loop.run_forever()

    def _call(self, coro: Any, timeout: float = 30.0) -> Any:
        if self._loop is None:
            coro.close()
            raise RuntimeError("simulator is not running")
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    async def _boot(self) -> None:
        self._life = Life(self)
        self._life.start()
        await self._listen()

    async def _listen(self) -> None:
        app = build_app(self, self._life)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port, reuse_address=True)
        await site.start()
        self._runner = runner
        if self.port == 0:
            self.port = int(runner.addresses[0][1])

    async def _unlisten(self) -> None:
        await self._life.hub.close_all()
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()

    def pause(self) -> None:
        """Stop listening (connections refused) but keep queue, history and cache."""
        self._call(self._unlisten())

    def resume(self) -> None:
        """Listen again on the same port after pause()."""
        if self._runner is None:
            self._call(self._listen())

    def freeze(self) -> None:
        """Stop answering anything, as `kill -STOP` on ComfyUI would (see the module docstring)."""
        if self._loop is None or self.faults.frozen.is_set():
            return
        self._thawed.clear()
        self.faults.frozen.set()
        self._loop.call_soon_threadsafe(self._thawed.wait)

    def thaw(self) -> None:
        """Carry on after freeze(), handling what arrived meanwhile."""
        self.faults.frozen.clear()
        self._thawed.set()

    def restart(self) -> None:
        """Like ComfyUI restarting: drop sockets, queue, history, cache and counter; same port."""
        self._call(self._restart())

    async def _restart(self) -> None:
        await self._unlisten()
        await self._life.close()
        shutil.rmtree(self.dirs["temp"], ignore_errors=True)
        self.dirs["temp"].mkdir(parents=True, exist_ok=True)
        self._life = Life(self)
        self._life.start()
        await self._listen()

    def stop(self) -> None:
        """Close everything and join the thread; safe to call twice."""
        self.thaw()
        with self._lock:
            if self._thread is None:
                return
            try:
                self._call(self._teardown(), timeout=15.0)
            except Exception as exc:  # never let stop() raise during test teardown
                log.debug("simulator teardown: %s", exc)
            self._shutdown_thread()
            if self._own_root:
                shutil.rmtree(self.root, ignore_errors=True)

    async def _teardown(self) -> None:
        await self._unlisten()
        await self._life.close()

    def _shutdown_thread(self) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(10)
        if self._loop is not None and not self._loop.is_running():
            self._loop.close()
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
        self._thread = None
        self._loop = None
        self._pool = None

    def __enter__(self) -> SimulatorServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
