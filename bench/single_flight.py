"""Single-flight: 50 concurrent identical new requests -> how many ComfyUI runs (goal 1)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import requests
from common import linkpix_api, make_project, simulator

LINK = "/prompt/fifty%20tabs?width=256&height=256"


def main(clients: int = 50) -> dict[str, float]:
    project = make_project(workflow_path="demo.json")
    with simulator(step_delay=0.05) as sim, linkpix_api(project, sim.url) as api:
        before = sim.prompts_received
        with ThreadPoolExecutor(clients) as pool:
            responses = list(pool.map(lambda _: requests.get(api + LINK, timeout=120), range(clients)))
        runs = sim.prompts_received - before
    statuses = sorted({r.status_code for r in responses})
    identical = len({r.content for r in responses}) == 1
    print(f"single-flight: {clients} concurrent identical requests -> {runs} ComfyUI run(s) "
          f"(goal 1); statuses {statuses}; identical bytes: {identical}")
    return {"single_flight_runs": runs}


if __name__ == "__main__":
    main()
