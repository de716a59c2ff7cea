"""Baseline for the hit-path benchmark: waitress serving one file from disk, nothing else, on one CPU as
LinkPix runs by default (linkpix/cpus.py: across CPUs waitress's hand-offs wait on wake-ups)."""

import os
import sys
from pathlib import Path

from waitress import serve

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from linkpix.cpus import choose_cpu, pin_process  # noqa: E402

PATH, PORT, THREADS = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
CONTENT_TYPE = "image/png"


def app(environ, start_response):
    f = open(PATH, "rb")
    size = os.fstat(f.fileno()).st_size
    start_response("200 OK", [("Content-Type", CONTENT_TYPE), ("Content-Length", str(size))])
    return environ["wsgi.file_wrapper"](f, 65536)


cpu = choose_cpu("auto")
if cpu is not None:
    pin_process(cpu)
serve(app, host="127.0.0.1", port=PORT, threads=THREADS, _quiet=True)
