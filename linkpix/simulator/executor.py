"""The queue worker and prompt execution, mirroring ComfyUI's prompt_worker + PromptExecutor.

One prompt at a time: `execution_start`, `execution_cached`, then per node `progress_state` (running),
`executing`, node work (sampler steps report `progress_state`/`progress`/preview frames), `executed` for
UI outputs, `progress_state` (finished); then `execution_success` or `execution_error` /
`execution_interrupted`; history is written (a `status` broadcast) before the final `executing null`.
Node work runs in a thread so big images never stall the event loop; all sends go through the hub's queue
in order.
"""

from __future__ import annotations

import asyncio
import hashlib
import threading
import time
import traceback
import uuid
from typing import Any

from linkpix.simulator import wshub
from linkpix.simulator.graph import DependencyCycleError, ExecutionList, is_link, signatures
from linkpix.simulator.jobqueue import PromptQueue
from linkpix.simulator.nodes import NodeRunner
from linkpix.simulator.profiles import with_assets
from linkpix.simulator.state import SimState
from linkpix.simulator.validation import annotated_filepath, full_type_name
from linkpix.simulator.wshub import WebSocketHub


class InterruptProcessingException(Exception):
    __module__ = "comfy.model_management"


class Abandoned(BaseException):
    """The simulator restarted or stopped while a node ran: unwind without reporting anything."""


def now_ms() -> int:
    return int(time.time() * 1000)


def format_value(x: Any) -> Any:
    if x is None or isinstance(x, int | float | bool | str):
        return x
    return str(x)


class NodeContext:
    """What a running node may use: folders, fault settings, progress reporting (thread-safe)."""

    def __init__(self, run: PromptRun, node_id: str) -> None:
        self.run = run
        self.node_id = node_id
        self.dirs = run.state.dirs
        method = run.state.preview_method
        asked = run.extra_data.get("preview_method") if isinstance(run.extra_data, dict) else None
        if run.state.profile.prompt_previews and isinstance(asked, str) and asked != "default":
            method = asked  # newer ComfyUI: the prompt's own preview method wins
        self.previews = method not in ("none", "", None)

    def check(self) -> None:
        if self.run.abandoned:
            raise Abandoned()
        if self.run.executor.interrupt_flag:
            raise InterruptProcessingException("Processing interrupted")

    def wait_step(self) -> None:
        """One sampler step's worth of time; with faults.hang, wait until interrupted."""
        faults = self.run.state.faults
        while faults.hang or faults.frozen.is_set():
            if not faults.frozen.is_set():
                self.check()
            time.sleep(0.01)
        self.sleep(float(faults.step_delay or 0.0))

    def work(self, seconds: float) -> None:
        """`seconds` of work that an interrupt stops (checked every 20 ms, like sampler steps)."""
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.check()
            time.sleep(min(0.02, max(0.0, end - time.monotonic())))

    def sleep(self, delay: float) -> None:
        """Sleep without noticing interrupts (like real work), but stop if the simulator goes away."""
        end = time.monotonic() + delay
        while delay > 0 and time.monotonic() < end:
            if self.run.abandoned:
                raise Abandoned()
            time.sleep(min(0.02, max(0.0, end - time.monotonic())))
        while self.run.state.faults.frozen.is_set() and not self.run.abandoned:
            time.sleep(0.01)

    def progress(self, value: int, total: int, preview: tuple[str, bytes] | None) -> None:
        self.check()
        run, nid = self.run, self.node_id
        run.set_progress(nid, value, total, "running")
        state = run.progress_snapshot()
        messages: list[tuple[Any, Any]] = [("progress_state", state)]
        supports = run.hub.supports_preview_metadata(run.client_id)
        if preview is not None and supports:
            meta = {"node_id": nid, "prompt_id": run.prompt_id, "display_node_id": nid, "parent_node_id": None,
                    "real_node_id": nid, "image_type": "image/png" if preview[0] == "PNG" else "image/jpeg"}
            messages.append((wshub.PREVIEW_IMAGE_WITH_METADATA, (preview[1], meta)))
        messages.append(("progress", {"value": value, "max": total, "prompt_id": run.prompt_id, "node": nid}))
        if preview is not None and not supports:
            messages.append((wshub.PREVIEW_IMAGE, (2 if preview[0] == "PNG" else 1, preview[1])))
        for event, data in messages:
            run.loop.call_soon_threadsafe(run.hub.send, event, data, run.client_id)


class PromptRun:
    """State of one prompt's execution."""

    def __init__(self, executor: Executor, item: list[Any]) -> None:
        self.executor = executor
        self.state = executor.state
        self.hub = executor.hub
        self.loop = asyncio.get_running_loop()
        self.number, self.prompt_id, self.prompt, self.extra_data, self.outputs = item[:5]
        extra = self.extra_data if isinstance(self.extra_data, dict) else {}
        self.client_id: str | None = extra.get("client_id")
        self.messages: list[tuple[str, dict[str, Any]]] = []
        self.nodes: dict[str, dict[str, Any]] = {}
        self.abandoned = False
        self.delayed = False  # the run's `run_delay` has been spent (by its first executed node)
        self._lock = threading.Lock()

    def add_message(self, event: str, data: dict[str, Any], broadcast: bool) -> None:
        data = {**data, "timestamp": now_ms()}
        self.messages.append((event, data))
        if self.client_id is not None or broadcast:
            self.hub.send(event, data, self.client_id)

    def set_progress(self, nid: str, value: Any, total: Any, state: str) -> None:
        with self._lock:
            entry = self.nodes.setdefault(nid, {"value": 0, "max": 1, "state": "pending"})
            entry.update(value=value, max=total, state=state)

    def finish_progress(self, nid: str) -> None:
        with self._lock:
            entry = self.nodes.setdefault(nid, {"value": 0, "max": 1, "state": "pending"})
            entry.update(state="finished", value=entry["max"])

    def progress_snapshot(self) -> dict[str, Any]:
        with self._lock:
            nodes = {nid: {"value": e["value"], "max": e["max"], "state": e["state"], "node_id": nid,
                           "prompt_id": self.prompt_id, "display_node_id": nid, "parent_node_id": None,
                           "real_node_id": nid}
                     for nid, e in self.nodes.items() if e["state"] != "pending"}
        return {"prompt_id": self.prompt_id, "nodes": nodes}

    def send_progress_state(self) -> None:
        self.hub.send("progress_state", self.progress_snapshot(), self.client_id)


class Executor:
    """Runs queued prompts one at a time and keeps the classic node cache."""

    def __init__(self, state: SimState, hub: WebSocketHub, queue: PromptQueue) -> None:
        self.state = state
        self.hub = hub
        self.queue = queue
        self.outputs_cache: dict[str, tuple[Any, ...]] = {}
        self.ui_cache: dict[str, dict[str, Any]] = {}
        self.interrupt_flag = False
        self.current: PromptRun | None = None
        self.last_node_id: str | None = None
        self.runner = NodeRunner()

    def interrupt(self) -> None:
        self.interrupt_flag = True

    def abandon(self) -> None:
        if self.current is not None:
            self.current.abandoned = True

    def running_node(self) -> tuple[str | None, str | None]:
        run = self.current
        return (run.client_id if run else None), self.last_node_id

    async def worker_loop(self) -> None:
        queue = self.queue
        while True:
            got = await queue.get()
            self._apply_flags()  # a /free sent while idle applies before the next prompt
            if got is not None:
                item, task_id = got
                self.state.stats.prompts_executed += 1
                run = PromptRun(self, item)
                self.current = run
                try:
                    history_result, success = await self.execute(run)
                except (asyncio.CancelledError, Abandoned):
                    raise
                except Exception as exc:  # a simulator bug must not kill the worker
                    run.add_message("execution_error", self._error_payload(run, None, exc, {}, set()), False)
                    history_result, success = {"outputs": {}, "meta": {}}, False
                finally:
                    self.current = None
                    self.last_node_id = None
                status = {"status_str": "success" if success else "error", "completed": success,
                          "messages": run.messages}
                queue.task_done(task_id, history_result, status)
                if run.client_id is not None:
                    self.hub.send("executing", {"node": None, "prompt_id": run.prompt_id}, run.client_id)
            self._apply_flags()

    def _apply_flags(self) -> None:
        flags = self.queue.take_flags()
        if flags.get("free_memory"):  # also implies unloading models, which the simulator has none of
            self.outputs_cache.clear()
            self.ui_cache.clear()

    def _is_changed(self, prompt: dict[str, Any], nid: str) -> Any:
        node = prompt[nid]
        cls = node.get("class_type")
        if cls in ("LoadImage", "LoadImageMask", "LoadImageOutput"):
            image = node.get("inputs", {}).get("image")
            if isinstance(image, str):
                name, base = annotated_filepath(image, self.state.dirs)
                path = (base if base is not None else self.state.dirs["input"]) / name
                try:
                    return hashlib.sha256(path.read_bytes()).hexdigest()
                except OSError:
                    return "missing"
        if cls == "SaveImageWebsocket":
            return uuid.uuid4().hex  # ComfyUI returns time.time(): always re-run
        return ""

    async def execute(self, run: PromptRun) -> tuple[dict[str, Any], bool]:
        self.interrupt_flag = False
        prompt = run.prompt
        run.add_message("execution_start", {"prompt_id": run.prompt_id}, False)
        keys = signatures(prompt, lambda nid: self._is_changed(prompt, nid), lambda nid: False)
        alive = set(keys.values())
        for cache in (self.outputs_cache, self.ui_cache):
            for key in [k for k in cache if k not in alive]:
                del cache[key]
        cached_nodes = [nid for nid in prompt if keys[nid] in self.outputs_cache]
        run.add_message("execution_cached", {"nodes": cached_nodes, "prompt_id": run.prompt_id}, False)
        catalogue = self.state.catalogue
        elist = ExecutionList(prompt, lambda nid: catalogue.is_output_node(prompt[nid]["class_type"]),
                              lambda nid: keys[nid] in self.outputs_cache)
        for nid in list(run.outputs):
            elist.add_node(nid)
        executed: set[str] = set()
        ui_outputs: dict[str, dict[str, Any]] = {}
        success = True
        while not elist.is_empty():
            try:
                nid = elist.stage()
            except DependencyCycleError as exc:
                run.add_message("execution_error", self._error_payload(run, None, exc, {}, executed, tb=False), False)
                success = False
                break
            ok = await self.execute_node(run, nid, keys, executed, ui_outputs)
            if not ok:
                success = False
                break
            elist.complete(nid)
        else:
            run.add_message("execution_success", {"prompt_id": run.prompt_id}, False)
        return ({"outputs": {n: u["output"] for n, u in ui_outputs.items()},
                 "meta": {n: u["meta"] for n, u in ui_outputs.items()}}, success)

    def _inputs(self, run: PromptRun, nid: str, keys: dict[str, str]) -> dict[str, Any]:
        node = run.prompt[nid]
        info = self.state.catalogue.class_info(node["class_type"]) or {}
        declared = list(info.get("input", {}).get("required", {})) + list(info.get("input", {}).get("optional", {}))
        values: dict[str, Any] = {}
        for name in declared:
            if name not in node["inputs"]:
                continue
            value = node["inputs"][name]
            if is_link(value):
                values[name] = self.outputs_cache[keys[value[0]]][value[1]]
            else:
                values[name] = value
        for name, kind in info.get("input", {}).get("hidden", {}).items():
            if kind == "PROMPT":
                values[name] = run.prompt
            elif kind == "EXTRA_PNGINFO":
                values[name] = run.extra_data.get("extra_pnginfo") if isinstance(run.extra_data, dict) else None
            elif kind == "UNIQUE_ID":
                values[name] = nid
        return values

    async def execute_node(self, run: PromptRun, nid: str, keys: dict[str, str], executed: set[str],
                           ui_outputs: dict[str, dict[str, Any]]) -> bool:
        key = keys[nid]
        meta = {"node_id": nid, "display_node": nid, "parent_node": None, "real_node_id": nid}
        if key in self.outputs_cache:
            cached_ui = self._with_assets(self.ui_cache.get(key))
            if run.client_id is not None:
                self.hub.send("executed", {"node": nid, "display_node": nid,
                                                "output": (cached_ui or {}).get("output"),
                                                "prompt_id": run.prompt_id}, run.client_id)
            if cached_ui is not None:
                ui_outputs[nid] = cached_ui
            run.finish_progress(nid)
            run.send_progress_state()
            return True

        class_type = run.prompt[nid]["class_type"]
        run.set_progress(nid, 0.0, 1.0, "running")
        run.send_progress_state()
        self.last_node_id = nid
        if run.client_id is not None:
            self.hub.send("executing", {"node": nid, "display_node": nid, "prompt_id": run.prompt_id},
                               run.client_id)
        inputs: dict[str, Any] = {}
        try:
            inputs = self._inputs(run, nid, keys)
            if self.interrupt_flag:
                raise InterruptProcessingException("Processing interrupted")
            info = self.state.catalogue.class_info(class_type) or {}
            ctx = NodeContext(run, nid)
            pool = self.state.node_pool
            outputs, ui = await run.loop.run_in_executor(pool, self._run_node, ctx, class_type, inputs, info)
        except InterruptProcessingException:
            run.add_message("execution_interrupted", {"prompt_id": run.prompt_id, "node_id": nid,
                                                      "node_type": class_type, "executed": list(executed)}, True)
            return False
        except Exception as exc:
            run.add_message("execution_error", self._error_payload(run, nid, exc, inputs, executed), False)
            return False
        self.outputs_cache[key] = outputs
        self.state.stats.nodes_executed += 1
        if ui:
            self.ui_cache[key] = {"meta": meta, "output": ui}
            entry = self._with_assets(self.ui_cache[key])
            assert entry is not None
            ui_outputs[nid] = entry
            if run.client_id is not None:
                self.hub.send("executed", {"node": nid, "display_node": nid, "output": entry["output"],
                                                "prompt_id": run.prompt_id}, run.client_id)
        run.finish_progress(nid)
        run.send_progress_state()
        executed.add(nid)
        return True

    def _with_assets(self, entry: dict[str, Any] | None) -> dict[str, Any] | None:
        """Today's ComfyUI registers output files as assets: `executed` and history carry their ids."""
        if entry is None or not self.state.profile.output_assets or not isinstance(entry.get("output"), dict):
            return entry
        return {**entry, "output": with_assets(entry["output"])}

    def _run_node(self, ctx: NodeContext, class_type: str, inputs: dict[str, Any],
                  info: dict[str, Any]) -> tuple[tuple[Any, ...], dict[str, Any] | None]:
        ctx.check()
        if self.state.faults.fail_class is not None and class_type == self.state.faults.fail_class:
            raise RuntimeError(f"Simulated failure of {class_type} (LinkPix simulator fault injection)")
        ctx.sleep(float(getattr(self.state.faults, "node_delay", 0.0) or 0.0))
        if not ctx.run.delayed:
            ctx.run.delayed = True
            ctx.work(float(self.state.faults.run_delay or 0.0))
        outputs, ui = self.runner.run(ctx, class_type, inputs, info)
        if ctx.run.abandoned:
            raise Abandoned()
        return outputs, ui

    def _error_payload(self, run: PromptRun, nid: str | None, exc: BaseException, inputs: dict[str, Any],
                       executed: set[str], tb: bool = True) -> dict[str, Any]:
        node = run.prompt.get(nid, {}) if isinstance(run.prompt, dict) and nid is not None else {}
        return {"prompt_id": run.prompt_id, "node_id": nid, "node_type": node.get("class_type"),
                "executed": list(executed), "exception_message": f"{exc}\n",
                "exception_type": full_type_name(type(exc)),
                "traceback": traceback.format_tb(exc.__traceback__) if tb else [],
                "current_inputs": {name: [format_value(v)] for name, v in inputs.items()} if tb else {},
                "current_outputs": list(run.prompt) if isinstance(run.prompt, dict) else []}

