"""SimulatorServer: a ComfyUI-compatible aiohttp server on loopback, run in a background thread.

The server owns one event loop in its own thread and builds the `SimState` its parts read (state.py); a
`Life` (life.py) holds everything ComfyUI forgets when it restarts (queue, history, node cache, counter,
websockets). `restart()` replaces the life, `pause()`/`resume()` only stop and restart listening on the
same port so clients see "connection refused" meanwhile, and
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

from linkpix.simulator.audio import AUDIO_CLASSES
from linkpix.simulator.catalogue import DATA_DIR, Catalogue
from linkpix.simulator.life import Life
from linkpix.simulator.profiles import DEFAULT as DEFAULT_PROFILE
from linkpix.simulator.profiles import Profile, get_profile
from linkpix.simulator.routes import build_app
from linkpix.simulator.state import Faults, SimState, Stats
from linkpix.simulator.validation import Validator

log = logging.getLogger("linkpix.simulator")


class SimulatorServer:
    """A real HTTP + websocket server that speaks ComfyUI 0.3.64's protocol (see module docstring)."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, root: Path | None = None,
                 step_delay: float = 0.0, models: dict[str, list[str]] | None = None,
                 preview_method: str = "auto", *, name: str = "", checkpoints: list[str] | None = None,
                 unets: list[str] | None = None, loras: list[str] | None = None,
                 run_delay: float = 0.0, profile: str = DEFAULT_PROFILE, audio: bool = False) -> None:
        self._own_root = root is None
        self.root = Path(tempfile.mkdtemp(prefix="linkpix-sim-") if root is None else root).resolve()
        dirs = {"input": self.root / "input", "output": self.root / "output", "temp": self.root / "temp"}
        faults = Faults(step_delay, self._drop_websockets)
        faults.run_delay = float(run_delay)
        # What the routes, the executor and the file handlers read (state.py); profile: which ComfyUI it plays
        self.state = SimState(host=host, port=int(port), name=name, profile=get_profile(profile), dirs=dirs,
                              preview_method=preview_method, faults=faults)
        models = dict(models or {})
        for folder, files in (("checkpoints", checkpoints), ("diffusion_models", unets), ("loras", loras)):
            if files is not None:
                models[folder] = list(files)
        self._models = models or None
        self._audio = audio  # EmptyAudio and SaveAudio, which the captured ComfyUI lacked (simulator/audio.py)
        self._thawed = threading.Event()
        self._thawed.set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._life: Life = None  # type: ignore[assignment]
        self._lock = threading.Lock()

    # -- the state, as tests and callers read it --------------------------------------------
    @property
    def host(self) -> str:
        return self.state.host

    @property
    def port(self) -> int:
        return self.state.port

    @property
    def name(self) -> str:
        return self.state.name

    @property
    def profile(self) -> Profile:
        return self.state.profile

    @profile.setter
    def profile(self, profile: Profile) -> None:
        self.state.profile = profile

    @property
    def dirs(self) -> dict[str, Path]:
        return self.state.dirs

    @property
    def preview_method(self) -> str:
        return self.state.preview_method

    @property
    def faults(self) -> Faults:
        return self.state.faults

    @property
    def stats(self) -> Stats:
        return self.state.stats

    @property
    def catalogue(self) -> Catalogue:
        return self.state.catalogue

    @property
    def validator(self) -> Validator:
        return self.state.validator

    @property
    def prompt_counter(self) -> int:
        """How many POST /prompt this life got, refused ones included (ComfyUI's counter)."""
        return self._life.counter

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
            self.state.catalogue = Catalogue(self.dirs["input"], self._models, AUDIO_CLASSES if self._audio else None)
            self.state.validator = Validator(self.catalogue, self.dirs)
            self._loop = asyncio.new_event_loop()
            self.state.node_pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="sim-node")
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
        self._life = Life(self.state)
        self._life.start()
        await self._listen()

    async def _listen(self) -> None:
        app = build_app(self.state, self._life)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port, reuse_address=True)
        await site.start()
        self._runner = runner
        if self.state.port == 0:
            self.state.port = int(runner.addresses[0][1])

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

    def _drop_websockets(self) -> None:
        self._call(self._life.hub.close_all())

    def restart(self) -> None:
        """Like ComfyUI restarting: drop sockets, queue, history, cache and counter; same port."""
        self._call(self._restart())

    async def _restart(self) -> None:
        await self._unlisten()
        await self._life.close()
        shutil.rmtree(self.dirs["temp"], ignore_errors=True)
        self.dirs["temp"].mkdir(parents=True, exist_ok=True)
        self._life = Life(self.state)
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
        if self.state.node_pool is not None:
            self.state.node_pool.shutdown(wait=False, cancel_futures=True)
        self._thread = None
        self._loop = None
        self.state.node_pool = None

    def __enter__(self) -> SimulatorServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
