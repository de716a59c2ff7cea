"""Baseline for the hit-path benchmark: waitress serving one file from disk, nothing else."""

import os
import sys

from waitress import serve

PATH, PORT, THREADS = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
CONTENT_TYPE = "image/png"


def app(environ, start_response):
    f = open(PATH, "rb")
    size = os.fstat(f.fileno()).st_size
    start_response("200 OK", [("Content-Type", CONTENT_TYPE), ("Content-Length", str(size))])
    return environ["wsgi.file_wrapper"](f, 65536)


serve(app, host="127.0.0.1", port=PORT, threads=THREADS, _quiet=True)
