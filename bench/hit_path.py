"""Hit path: /prompt on a warm cache vs a bare waitress app serving the same file (goal: ratio >= 0.8).

LinkPix runs as users run it: `python3 app.py` with the default settings and log level, so every request
writes its access-log line, here to a file. Throughput on a shared 2-core VM swings with other load, so
the servers are measured in short alternating rounds and the median of the per-round ratios is printed,
with the server CPU time per request read from /proc. A second LinkPix with its access log off
(LINKPIX_LOG_LEVEL=WARNING) is measured in the same rounds, to show what the log itself costs, and a third
left free to move between CPUs (LINKPIX_CPU_PIN=off), to show what the default pin to one CPU gives (the
bare server is pinned too: linkpix/cpus.py). At the end the log is counted: one line per request
answered, none lost when the server stopped.
"""

from __future__ import annotations

import statistics
import sys

import requests
from common import API_PIDS, cpu_seconds, free_port, linkpix_api, log_lines, make_project, process, simulator, wrk

LINK = "/prompt/a%20red%20fox%20in%20the%20snow?width=512&height=512&style=kawaii"
GOAL = 0.8


def measured(url: str, pid: int, seconds: int) -> dict[str, float]:
    before = cpu_seconds(pid)
    figures = wrk(url, seconds=seconds)
    figures["cpu_us_per_request"] = (cpu_seconds(pid) - before) / figures["requests"] * 1e6
    return figures


def main(seconds: int = 1, rounds: int = 15) -> dict[str, float]:
    """Alternate short rounds of the three servers so background load hits them alike."""
    project = make_project(workflow_path="demo.json")
    with simulator() as sim, linkpix_api(project, sim.url) as api, \
            linkpix_api(project, sim.url, "quiet.log", LINKPIX_LOG_LEVEL="WARNING") as quiet, \
            linkpix_api(project, sim.url, "free.log", LINKPIX_CPU_PIN="off") as free:
        first = requests.get(api + LINK, timeout=60)
        first.raise_for_status()
        for other in (quiet, free):
            requests.get(other + LINK, timeout=60).raise_for_status()
        stored = project / "cache" / "default" / first.headers["X-LinkPix-Image-Url"].rsplit("/", 1)[1]
        port = free_port()
        bare = f"http://127.0.0.1:{port}/"
        with process([sys.executable, "bench/bare_server.py", str(stored), str(port), "48"], bare) as proc:
            servers = {"bare": (bare, proc.pid), "linkpix": (api + LINK, API_PIDS[api]),
                       "log off": (quiet + LINK, API_PIDS[quiet]), "pin off": (free + LINK, API_PIDS[free])}
            warm = {name: wrk(url, seconds=1) for name, (url, _pid) in servers.items()}
            names = list(servers)
            runs = []
            for i in range(rounds):  # each round starts with the next server: no one is always first
                order = names[i % len(names):] + names[:i % len(names)]
                runs.append({name: measured(*servers[name], seconds) for name in order})
    sent = 1 + warm["linkpix"]["requests"] + sum(r["linkpix"]["requests"] for r in runs)
    logged = log_lines(project, "GET /prompt/")

    def median(name: str, key: str) -> float:
        return statistics.median(r[name][key] for r in runs)

    def ratio(name: str, key: str, base: str = "bare", invert: bool = False) -> tuple[float, list[float]]:
        values = sorted((r[base][key] / r[name][key]) if invert else (r[name][key] / r[base][key]) for r in runs)
        return statistics.median(values), values

    print(f"hit path (c=16, {len(first.content)} B image, {rounds} alternating rounds of {seconds} s; LinkPix with "
          f"default settings and its access log written to a file):")
    for name in servers:
        print(f"  {name:8} {median(name, 'rps'):7.0f} req/s  p50 {median(name, 'p50_ms'):.2f} ms  "
              f"p99 {median(name, 'p99_ms'):.2f} ms  CPU {median(name, 'cpu_us_per_request'):.0f} us/request"
              f"  non-2xx {sum(r[name]['errors'] for r in runs):.0f}   (medians of rounds)")
    rps, all_rps = ratio("linkpix", "rps")
    cpu, _ = ratio("linkpix", "cpu_us_per_request", invert=True)
    log_rps, _ = ratio("linkpix", "rps", base="log off")
    log_cpu, _ = ratio("linkpix", "cpu_us_per_request", base="log off", invert=True)
    print(f"  LinkPix / bare: requests/s {rps:.2f} (goal >= {GOAL}; rounds {', '.join(f'{r:.2f}' for r in all_rps)})")
    print(f"  LinkPix / bare: CPU per request {cpu:.2f} (bare's CPU per request / LinkPix's)")
    pin_rps, all_pin = ratio("linkpix", "rps", base="pin off")
    print(f"  access log on / off: requests/s {log_rps:.2f}, CPU per request {log_cpu:.2f}")
    print(f"  one CPU (default) / free to move: requests/s {pin_rps:.2f} (rounds {min(all_pin):.2f}-{max(all_pin):.2f})"
          f", p99 {median('linkpix', 'p99_ms'):.2f} / {median('pin off', 'p99_ms'):.2f} ms")
    print(f"  access log: {logged:.0f} lines for {sent:.0f} requests answered"
          f"{'' if logged >= sent else f' ({sent - logged:.0f} MISSING)'}")
    return {"hit_ratio": rps, "hit_cpu_ratio": cpu, "log_on_off_ratio": log_rps, "pin_on_off_ratio": pin_rps,
            "log_lines_missing": max(0.0, sent - logged)}


if __name__ == "__main__":
    main()
