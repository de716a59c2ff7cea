"""Region edits of a 24 MP JPEG: LinkPix's own time, its peak memory, and the quality of the result.

Figures (each against a baseline measured in this run):
1. the whole POST /edit of a 24 MP JPEG with a spatial edit ("add a disc") through the simulator, the API
   run as users run it (`app.py`, default settings, access log on): LinkPix's own time = total - the
   ComfyUI run (goal <= 3 s), against the same request with method=lut (the colour path's own time) and
   against decoding + encoding the photo once (the floor any full-resolution answer pays);
2. peak memory of prepare + finish(method=region) in a fresh process (the growth of the resident set's
   high-water mark, VmHWM, over the resident size before) against the decoded photo as RGB (goal <= 3x);
3. quality of that answer against the simulator's truth (tests/region_support.py): outside the disc mean
   CIEDE2000 to the source (goal <= 1.0) and fine-detail correlation (goal >= 0.9), inside mean CIEDE2000
   to the model's pixels (goal <= 3), and the same detail figure for the model's output upscaled.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import requests
from common import API_PIDS, ROOT, cpu_seconds, linkpix_api, make_project, median, simulator
from PIL import Image

sys.path.insert(0, str(ROOT / "tests"))
from region_support import detailed_photo, figures, high_pass_correlation, jpeg  # noqa: E402

from linkpix.edit import finish, resize  # noqa: E402
from linkpix.imaging.budget import EDIT_BYTES_PER_PIXEL  # noqa: E402
from linkpix.simulator import grades  # noqa: E402

SIZE = (6000, 4000)
# The peak is read from /proc/self/status (VmHWM, kB): getrusage's ru_maxrss survives exec on Linux, so in
# a child it starts at the parent's size when the parent was the larger.
PROBE = """
import sys, time
from linkpix.edit import finish, resize

def status(name):
    for line in open("/proc/self/status"):
        if line.startswith(name + ":"):
            return int(line.split()[1])

data = open(sys.argv[1], "rb").read()
model = open(sys.argv[2], "rb").read()
before = status("VmRSS")
started = time.process_time()
prep = finish.prepare(data, resize.KONTEXT)
result = finish.finish(prep, model, "region", None)
cpu = time.process_time() - started
after = status("VmHWM")
print(before, after, cpu, result.method, result.width, result.height, len(result.data))
"""


def whole_edit(data: bytes) -> None:
    project = make_project()
    with simulator() as sim, linkpix_api(project, sim.url) as api:
        rows: dict[str, list[tuple[float, float]]] = {"region": [], "lut": []}
        cpu: dict[str, list[float]] = {"region": [], "lut": []}
        body = {}
        for i in range(3):
            for method, prompt in (("region", f"add a disc {i}"), ("lut", f"warm look {i}")):
                started, used = time.perf_counter(), cpu_seconds(API_PIDS[api])
                r = requests.post(api + "/edit", files={"image": ("big.jpg", data, "image/jpeg")},
                                  data={"prompt": prompt, "format": "json", "method": method}, timeout=300)
                total = time.perf_counter() - started
                cpu[method].append(cpu_seconds(API_PIDS[api]) - used)  # the simulator runs in this process
                r.raise_for_status()
                body = r.json() if method == "region" else body
                got = r.json()
                assert (got["width"], got["height"]) == SIZE and got["method"] == method, got
                rows[method].append((total, got["generation_ms"] / 1000))
        result = np.asarray(Image.open(io.BytesIO(requests.get(api + body["url"], timeout=60).content)).convert("RGB"))
        model = Image.open(io.BytesIO(requests.get(api + body["model_output"], timeout=60).content))
        model.load()
    own = {m: median([t - run for t, run in v]) for m, v in rows.items()}
    runs = median([run for _, run in rows["region"]])
    started = time.process_time()
    img = Image.open(io.BytesIO(data))
    img.load()
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=95, subsampling=0)
    floor = time.process_time() - started
    mine = {m: median(v) for m, v in cpu.items()}
    print(f"whole /edit of a 24 MP JPEG ({len(data) / 2**20:.1f} MiB), spatial edit: LinkPix's own time "
          f"{own['region']:.2f} s wall (goal <= 3; the simulated run {runs:.2f} s excluded), "
          f"{mine['region']:.2f} s of the API process's CPU; method=lut on the same photo {own['lut']:.2f} s wall, "
          f"{mine['lut']:.2f} s CPU (ratio {mine['region'] / mine['lut']:.2f}); decoding + encoding the photo once "
          f"{floor:.2f} s CPU (ratio {mine['region'] / floor:.2f}); load average {os.getloadavg()[0]:.1f} on "
          f"{os.cpu_count()} cores (wall times stretch with it, CPU times do not)")
    source = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
    got = figures(source, result, model, body["seed"])
    upscaled = np.asarray(model.convert("RGB").resize(SIZE, Image.Resampling.BICUBIC))
    naive = high_pass_correlation(source[:256, :256], upscaled[:256, :256])
    print(f"quality: region share {body['region_share']:.3f}; outside the disc mean CIEDE2000 to the source "
          f"{got['outside_de']:.2f} (goal <= 1.0), fine-detail correlation {got['detail_corr']:.3f} (goal >= 0.9; "
          f"the model's output upscaled: {naive:.3f}); inside mean CIEDE2000 to the model's pixels "
          f"{got['inside_de']:.2f} (goal <= 3)")


def memory(data: bytes) -> None:
    folder = Path(tempfile.mkdtemp())
    (folder / "big.jpg").write_bytes(data)
    prep = finish.prepare(data, resize.KONTEXT)
    out = io.BytesIO()
    grades.edit(prep.small, "add a disc", 3).save(out, "PNG")
    (folder / "model.png").write_bytes(out.getvalue())
    del prep
    line = subprocess.run([sys.executable, "-c", PROBE, str(folder / "big.jpg"), str(folder / "model.png")],
                          cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    before, after, cpu = int(line[0]), int(line[1]), float(line[2])
    rgb_mb = SIZE[0] * SIZE[1] * 3 / 2**20
    peak_mb = (after - before) / 1024
    per_pixel = (after - before) * 1024 / (SIZE[0] * SIZE[1])
    print(f"prepare + finish(region) in a fresh process: CPU {cpu:.2f} s; peak memory growth {peak_mb:.0f} MiB = "
          f"{peak_mb / rgb_mb:.2f}x the decoded RGB photo ({rgb_mb:.0f} MiB; goal <= 3) = {per_pixel:.1f} bytes per "
          f"pixel (the edit memory budget takes EDIT_BYTES_PER_PIXEL = {EDIT_BYTES_PER_PIXEL}); result {line[3]} "
          f"{line[4]}x{line[5]}")


def main() -> None:
    print("== region edits at full resolution (bench/edit_region.py)")
    data = jpeg(detailed_photo(*SIZE))
    memory(data)
    whole_edit(data)


if __name__ == "__main__":
    main()
