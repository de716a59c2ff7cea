"""The pool of ComfyUI backends: one `ComfyClient` per backend, and the choice of backend for each run.

The interface other code uses (issue 14's replicas and the fronts build on it):

- `choose(graph, exclude=())` -> the client to run `graph` on, reserved for the run; `finished(client, ...)`
  releases it. BadRequest (400) when no backend has a model file the graph names (which backend has
  which is in the message), BackendUnavailable (503) when none that has them is answering.
- `client(name)` -> the client of a named backend (a re-attached job goes back to its backend).
- `object_info()` -> one object_info merged over every backend (each combo the union of the lists), or
  None before any backend answered; never waits on a frozen backend.
- `check_models(graph)` -> the 400 of `choose`, without reserving anything (for accepting a job).
- `health()` -> the figures of every backend (state, queue, last model, runs, mean run time, last error,
  system stats), from what the keepers last learnt; `ready()` -> (ready?, why) for load balancers.
- `update(specs)` -> add and remove backends while running; a removed one finishes its runs first.

Everything a request reads is what each backend's keeper last learnt (`keeper.py`), so no request waits
on a backend that stopped answering: it leaves the rotation within seconds and rejoins when it answers.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from linkpix.comfy import routing
from linkpix.comfy.client import ClientClosed, ComfyClient
from linkpix.comfy.health import FROZEN, REFUSED, UNKNOWN, UP
from linkpix.comfy.stops import StopList
from linkpix.config import BackendSpec
from linkpix.errors import BackendUnavailable, BadRequest, LinkPixError

log = logging.getLogger("linkpix.comfy")

RETIRE_MAX = 600.0  # s a removed backend may keep unconfirmed stops before its client is closed anyway
REFRESH_ON_MISS = 10.0  # s between object_info refreshes triggered by a model no backend seems to have
FRESH_WAIT = 1.0  # s /health and /ready wait for probes of backends not known to be up


class ModelMissing(BadRequest):
    """No backend has a model file the graph names: a 400 before anything is queued. `comfyui_body` is
    what ComfyUI itself would have answered (`value_not_in_list`), for a front that speaks ComfyUI."""

    def __init__(self, message: str, details: dict[str, Any], comfyui_body: dict[str, Any]) -> None:
        super().__init__(message, details, rule="backend_names")
        self.comfyui_body = comfyui_body


class NoBackend(BackendUnavailable):
    """No backend could take the run (none answering, or none left to fail over to): nothing was queued."""


class AllBusy(NoBackend):
    """Every backend that could run the graph already has `depth` of LinkPix's runs: wait for a slot (the
    fair queue, `pipeline/fairqueue.py`, asks with a depth and keeps the request until one frees)."""


@dataclass
class Member:
    """One backend: its settings, its client, and what LinkPix saw it do."""

    spec: BackendSpec
    client: ComfyClient
    inflight: int = 0  # runs of LinkPix on it now
    runs: int = 0
    failures: int = 0
    run_seconds: float = 0.0  # of the successful runs
    last_model: str | None = None
    last_error: str | None = None
    retiring_since: float | None = None
    added: float = field(default_factory=time.monotonic)

    @property
    def name(self) -> str:
        return self.spec.label

    @property
    def load(self) -> int:
        """Prompts ahead of a new one: ComfyUI's own count, or LinkPix's runs if those are newer news."""
        return max(self.inflight, self.client.queue_remaining or 0)

    @property
    def full(self) -> bool:
        return bool(self.spec.max_queue) and self.load >= self.spec.max_queue


class Pool:
    """See the module docstring. Thread-safe; built by the app factory, closed with it."""

    def __init__(self, specs: Sequence[BackendSpec], stops: StopList | None = None, *,
                 control_timeout: float | None = None) -> None:
        self.stops = stops if stops is not None else StopList(None)
        self._own_stops = stops is None
        self._control_timeout = control_timeout
        self._lock = threading.RLock()
        self._members: dict[str, Member] = {}  # by URL
        self._merged: tuple[tuple[int, ...], dict[str, Any]] | None = None
        self._refreshed_on_miss = 0.0
        self._closed = False
        self.update(specs)
        configured = {m.client.base_url for m in self.members()}
        self.stops.forget_stale(configured, ComfyClient.shown)  # an hour old there: ComfyUI is done with them
        for url in self.stops.backends():
            if url not in configured:
                log.warning("%d prompt(s) wait to be stopped on a ComfyUI that is no longer configured (%s); "
                            "they are stopped if it is configured again", self.stops.count(url),
                            ComfyClient.shown(url))

    # --- membership -----------------------------------------------------------------------------
    def update(self, specs: Sequence[BackendSpec]) -> None:
        """Make the pool match `specs`: new URLs get a client, changed settings apply at once, removed
        backends take no new runs and are closed once their runs (and stops) are done."""
        with self._lock:
            wanted = {spec.url: spec for spec in specs}
            for url, spec in wanted.items():
                member = self._members.get(url)
                if member is None:
                    kwargs = {} if self._control_timeout is None else {"control_timeout": self._control_timeout}
                    client = ComfyClient(url, name=spec.name or None, stops=self.stops, **kwargs)
                    self._members[url] = Member(spec, client)
                    log.info("ComfyUI backend %s (%s) joined the pool", spec.label, client.shown_url)
                else:
                    if member.retiring_since is not None:
                        log.info("ComfyUI backend %s is configured again", spec.label)
                    member.spec, member.retiring_since = spec, None
                    member.client.name = spec.label
            for url, member in self._members.items():
                if url not in wanted and member.retiring_since is None:
                    member.retiring_since = time.monotonic()
                    log.info("ComfyUI backend %s leaves the pool once its %d run(s) are done",
                             member.name, member.inflight)
        self._sweep()

    def _sweep(self) -> None:
        """Close removed backends that have nothing left to do."""
        done: list[Member] = []
        with self._lock:
            for url, member in list(self._members.items()):
                if member.retiring_since is None or member.inflight:
                    continue
                overdue = time.monotonic() - member.retiring_since > RETIRE_MAX
                if overdue or not self.stops.count(member.client.base_url):
                    del self._members[url]
                    done.append(member)
        for member in done:  # closing joins its threads: never in the request that noticed the change
            log.info("ComfyUI backend %s left the pool", member.name)
            threading.Thread(target=member.client.close, name=f"close {member.name}", daemon=True).start()

    def members(self) -> list[Member]:
        with self._lock:
            return list(self._members.values())

    def _active(self) -> list[Member]:
        return [m for m in self.members() if m.retiring_since is None]

    def client(self, name: str) -> ComfyClient:
        """The client of backend `name` (or of URL `name`, as jobs recorded before names existed)."""
        for member in self.members():
            if name in (member.name, member.client.base_url, member.client.shown_url):
                return member.client
        raise BackendUnavailable(f"ComfyUI backend {name!r} is no longer configured (configured: "
                                 f"{', '.join(m.name for m in self._active()) or 'none'})")

    # --- routing ----------------------------------------------------------------------------------
    def choose(self, graph: dict[str, Any], exclude: Iterable[ComfyClient] = (),
               depth: int | None = None, busy: Callable[[str], int | None] | None = None) -> ComfyClient:
        """The backend to run `graph` on, reserved for the run (see the module docstring). With `depth`,
        only a backend with fewer than `depth` LinkPix runs on it (`busy(url)`: the runs every replica
        has there, when they share a Redis); AllBusy when every able one is full."""
        refs = routing.model_files(graph)
        wanted = routing.main_model(refs)
        excluded = {id(c) for c in exclude}
        if self._closed:
            raise ClientClosed("the ComfyUI pool is closed (LinkPix is shutting down)")
        able = self._able([m for m in self._active() if id(m.client) not in excluded], refs)
        if not able:
            raise self._nobody_has(refs, bool(excluded))
        with self._lock:
            able = [m for m in able if m.retiring_since is None]
            usable = [m for m in able if m.client.health.state in (UP, UNKNOWN)] \
                or [m for m in able if m.client.health.state == REFUSED]
            if not usable:
                raise NoBackend("no ComfyUI backend that can run this is answering: " + "; ".join(
                    m.client.health.describe() for m in able), {"backends": [m.name for m in able]})
            if depth is not None:
                usable = [m for m in usable if _runs(m, busy) < depth]
                if not usable:
                    raise AllBusy(f"every ComfyUI backend that can run this has {depth} runs", {})
            pick = min(usable, key=lambda m: (m.full, routing.cost(m.load, m.spec.weight, m.last_model, wanted),
                                              m.runs))
            pick.inflight += 1
            pick.last_model = wanted or pick.last_model
            return pick.client

    def has_room(self, depth: int, busy: Callable[[str], int | None] | None = None) -> bool:
        """Whether some backend in the rotation has fewer than `depth` LinkPix runs (cheap: no probing)."""
        return any(_runs(m, busy) < depth and m.client.health.state != FROZEN for m in self._active())

    def unreserve(self, client: ComfyClient) -> None:
        """Undo `choose`'s reservation of a run that was not started after all (no run is counted)."""
        with self._lock:
            for member in self._members.values():
                if member.client is client:
                    member.inflight = max(0, member.inflight - 1)

    def can_run(self, graph: dict[str, Any], exclude: Iterable[ComfyClient] = ()) -> bool:
        """Whether `choose` would find a backend now (nothing is reserved)."""
        excluded = {id(c) for c in exclude}
        able = self._able([m for m in self._active() if id(m.client) not in excluded], routing.model_files(graph))
        return any(m.client.health.state in (UP, UNKNOWN, REFUSED) for m in able)

    def _able(self, members: list[Member], refs: list[routing.ModelRef]) -> list[Member]:
        """The members that have every file in `refs` (or whose lists are unknown: ComfyUI will judge)."""
        if not refs:
            return members
        able = []
        for member in members:
            info = self._info_of(member)
            if info is None or not routing.missing(info, refs):
                able.append(member)
        return able

    def _info_of(self, member: Member) -> dict[str, Any] | None:
        """The backend's object_info; fetched now only if it never was and the backend just answered."""
        client = member.client
        info = client.cached_object_info()
        if info is not None:
            return info
        if client.health.state == UNKNOWN:  # just added: let its first probe say whether it answers
            client.keeper.probe_now(client.control_timeout + 0.5)
        if client.health.state != UP:
            return None
        try:
            return client.object_info()
        except LinkPixError:
            return None

    def check_models(self, graph: dict[str, Any]) -> None:
        """BadRequest when no configured backend has every model file `graph` names."""
        refs = routing.model_files(graph)
        if refs and not self._able(self._active(), refs):
            error = self._nobody_has(refs, False)
            if isinstance(error, BadRequest):
                raise error

    def _nobody_has(self, refs: list[routing.ModelRef], excluding: bool) -> LinkPixError:
        """400 naming the file and which backend has which, or 503 when only unavailable ones have it."""
        active = self._active()
        if not self._able(active, refs):
            now = time.monotonic()
            if now - self._refreshed_on_miss > REFRESH_ON_MISS:  # a model added to ComfyUI meanwhile?
                self._refreshed_on_miss = now
                for member in active:
                    if member.client.health.state == UP:
                        try:
                            member.client.object_info(refresh=True)
                        except LinkPixError:
                            pass
        if self._able(active, refs):
            reason = "no other backend that has them" if excluding else "the backends that have them are busy"
            return NoBackend(f"the run needs {', '.join(r.describe() for r in refs)}; {reason} "
                                      "is available")
        known = [(m, i) for m, i in ((m, m.client.cached_object_info()) for m in active) if i is not None]
        gaps = [r for r in refs if all(routing.missing(i, [r]) for _, i in known)]
        if not gaps:  # each file is somewhere, but no backend has them all
            lacks = "; ".join(f"{m.name} lacks {', '.join(repr(r.value) for r in routing.missing(i, refs))}"
                              for m, i in known)
            return BadRequest(f"no ComfyUI backend has every model this run needs: {lacks}",
                              {"parameter": "model", "backends": {m.name: [r.value for r in routing.missing(i, refs)]
                                                                  for m, i in known}})
        gap = gaps[0]
        offers = {m.name: routing.files_of(i, gap) for m, i in known}
        listing = "; ".join(f"{name} has {', '.join(files) or 'none'}" for name, files in offers.items())
        allowed = list(dict.fromkeys(f for files in offers.values() for f in files))
        return ModelMissing(f"no ComfyUI backend has the {gap.describe()}: {listing}",
                            {"parameter": "model", "missing": gap.value, "kind": gap.kind, "node": gap.node_id,
                             "input": gap.input,
                             "allowed": allowed, "backends": offers}, _comfyui_rejection(gap, allowed))

    def reserve(self, client: ComfyClient) -> None:
        """Count a run on `client` that `choose` did not pick (a re-attached prompt)."""
        with self._lock:
            for member in self._members.values():
                if member.client is client:
                    member.inflight += 1

    def finished(self, client: ComfyClient, seconds: float, error: LinkPixError | None = None) -> None:
        """A run reserved by `choose` or `reserve` is over (successfully unless `error`)."""
        with self._lock:
            for member in self._members.values():
                if member.client is client:
                    member.inflight = max(0, member.inflight - 1)
                    member.runs += 1
                    if error is None:
                        member.run_seconds += seconds
                    else:
                        member.failures += 1
                        member.last_error = error.message
        self._sweep()

    # --- what the backends offer ------------------------------------------------------------------
    def object_info(self) -> dict[str, Any] | None:
        """object_info merged over the backends (see the module docstring)."""
        infos = [i for i in (self._info_of(m) for m in self._active()) if i is not None]
        if not infos:
            return None
        key = tuple(id(i) for i in infos)
        merged = self._merged
        if merged is not None and merged[0] == key:
            return merged[1]
        result = routing.merge_object_info(infos)
        self._merged = (key, result)
        return result

    # --- health -----------------------------------------------------------------------------------
    def health(self, fresh: bool = True) -> dict[str, Any]:
        """The figures of every backend, for /health and the dashboard (one place builds them).

        With `fresh`, backends not known to be up are probed first (in parallel, at most FRESH_WAIT
        seconds): one that just came back is reported up. A frozen one is never waited for.
        """
        members = self.members()
        if fresh:
            self._refresh([m for m in members if m.client.health.state in (UNKNOWN, REFUSED)])
        rows = [self._row(m) for m in members]
        up = [r for r in rows if r["state"] == UP and not r["retiring"]]
        return {"up": len(up), "backends": rows}

    def _refresh(self, members: list[Member]) -> None:
        before = {id(m): m.client.health.generation for m in members}
        for member in members:
            member.client.keeper.wake()
        deadline = time.monotonic() + FRESH_WAIT
        for member in members:
            member.client.health.wait_report(before[id(member)], max(0.0, deadline - time.monotonic()))

    @staticmethod
    def _row(member: Member) -> dict[str, Any]:
        client, health = member.client, member.client.health.snapshot()
        stats = client.keeper.system_stats or {}
        system = stats.get("system") if isinstance(stats.get("system"), dict) else {}
        devices = [{"name": d.get("name"), "type": d.get("type"), "vram_total": d.get("vram_total"),
                    "vram_free": d.get("vram_free")} for d in stats.get("devices") or [] if isinstance(d, dict)]
        good = member.runs - member.failures
        return {"name": member.name, "url": client.shown_url, "state": health["state"],
                "for_seconds": health["for_seconds"], "queue": client.queue_remaining,
                "inflight": member.inflight, "last_model": member.last_model, "runs": member.runs,
                "failures": member.failures,
                "mean_run_seconds": round(member.run_seconds / good, 2) if good > 0 else None,
                "last_error": member.last_error or health["last_error"],
                "version": system.get("comfyui_version"), "jobs_api": client.features.known()["jobs_api"],
                "devices": devices, "weight": member.spec.weight,
                "max_queue": member.spec.max_queue, "tags": list(member.spec.tags),
                "stops_pending": client.stops.count(client.base_url),
                "retiring": member.retiring_since is not None}

    def ready(self) -> tuple[bool, str]:
        """Whether a load balancer should send work here: some backend up and not full."""
        active = self._active()
        if any(m.client.health.state not in (UP, FROZEN) for m in active):
            self._refresh([m for m in active if m.client.health.state in (UNKNOWN, REFUSED)])
        up = [m for m in active if m.client.health.state == UP]
        if not up:
            return False, "no ComfyUI backend is answering: " + "; ".join(
                m.client.health.describe() for m in active)
        if all(m.full for m in up):
            return False, "every ComfyUI backend's queue is full: " + ", ".join(
                f"{m.name} {m.load}/{m.spec.max_queue}" for m in up)
        return True, f"{len(up)} of {len(active)} ComfyUI backend(s) answering"

    def close(self) -> None:
        with self._lock:
            self._closed = True
            members, self._members = list(self._members.values()), {}
        for member in members:
            member.client.close()
        if self._own_stops:
            self.stops.close()


def _runs(member: Member, busy: Callable[[str], int | None] | None) -> int:
    """LinkPix's runs on a backend: this process's, or every replica's when `busy` knows them."""
    shared = busy(member.client.base_url) if busy is not None else None
    return member.inflight if shared is None else max(shared, member.inflight)


def _comfyui_rejection(ref: routing.ModelRef, allowed: list[str]) -> dict[str, Any]:
    """ComfyUI 0.3.64's answer to a combo value it does not list (reference §3.4)."""
    shown = str(allowed) if len(allowed) <= 20 else f"(list of length {len(allowed)})"
    error = {"type": "value_not_in_list", "message": "Value not in list",
             "details": f"{ref.input}: '{ref.value}' not in {shown}",
             "extra_info": {"input_name": ref.input, "input_config": [allowed, {}] if len(allowed) <= 20 else None,
                            "received_value": ref.value}}
    return {"error": {"type": "prompt_outputs_failed_validation", "message": "Prompt outputs failed validation",
                      "details": "", "extra_info": {}},
            "node_errors": {ref.node_id: {"errors": [error], "dependent_outputs": [], "class_type": ref.class_type}}}
