"""What the metrics and the rate-limit gate cost a cached link, measured inside one process.

bench/hit_path.py measures the whole server with wrk, and on a shared machine its figures swing by more
than what is measured here. So this calls the WSGI stack of one app directly (no sockets), alternating
rounds of the stack as it runs (request log with the metrics hook, the hit gate, the memoised hit path)
and the same stack without the hook and the gate (the baseline), with the access log on.
"""

from __future__ import annotations

import io
import logging
import statistics
import time
from typing import Any

from common import make_project, simulator

from linkpix.web import create_app
from linkpix.web.middleware import HitPath, RequestLog

LINK = "/prompt/a%20red%20fox?width=64&height=64"


class _FileWrapper:
    """Stands in for the server's sendfile wrapper: the stack hands the file over, nobody reads it."""

    def __init__(self, f: Any, _block: int) -> None:
        self.f = f

    def close(self) -> None:
        self.f.close()

    def __iter__(self):  # noqa: ANN204
        return iter(())


def _environ() -> dict[str, Any]:
    return {"REQUEST_METHOD": "GET", "PATH_INFO": "/prompt/a red fox", "QUERY_STRING": "width=64&height=64",
            "REQUEST_URI": LINK, "SERVER_NAME": "bench", "SERVER_PORT": "4000", "wsgi.url_scheme": "http",
            "wsgi.input": io.BytesIO(), "wsgi.file_wrapper": _FileWrapper, "HTTP_ACCEPT": "image/*"}


def _start(status: str, _headers: list[tuple[str, str]], _exc: Any = None) -> None:
    assert status.startswith("200"), status


def _us_per_request(stack: Any, n: int) -> float:
    started = time.perf_counter()
    for _ in range(n):
        result = stack(_environ(), _start)
        if hasattr(result, "close"):
            result.close()
    return (time.perf_counter() - started) / n * 1e6


def main(rounds: int = 9, n: int = 20000) -> dict[str, float]:
    logging.basicConfig(stream=io.StringIO(), level=logging.INFO, force=True)  # access log on, in memory
    project = make_project(workflow_path="demo.json")
    with simulator() as sim:
        app = create_app(project / "config.json", overrides={"comfyui_url": sim.url}, use_env=False)
        svc = app.extensions["linkpix"]
        try:
            with app.test_client() as client:
                assert client.get(LINK).status_code == 200  # made once: every call below is a hit
            ours = app.wsgi_app  # RequestLog(observe) -> HitGate -> HitPath -> Flask
            flask_app = ours.app.hit_path.app
            baseline = RequestLog(HitPath(flask_app, svc.memo, svc.fingerprint), svc.recent_requests)
            _us_per_request(ours, 2000)
            _us_per_request(baseline, 2000)
            pairs = [(_us_per_request(baseline, n), _us_per_request(ours, n)) for _ in range(rounds)]
        finally:
            svc.close()
    # The best round of each: on a shared machine the other rounds measure the neighbours' load too.
    base, mine = min(b for b, _ in pairs), min(o for _, o in pairs)
    ratio = base / mine
    print(f"cached link in-process ({rounds} alternating rounds of {n}, best round of each): without metrics "
          f"and gate {base:.1f} us, with them {mine:.1f} us (+{mine - base:.1f} us); ratio {ratio:.3f} "
          f"(baseline / ours); median rounds {statistics.median(b for b, _ in pairs):.1f} / "
          f"{statistics.median(o for _, o in pairs):.1f} us")
    return {"ops_overhead_ratio": ratio, "ops_overhead_us": mine - base}


if __name__ == "__main__":
    main()
