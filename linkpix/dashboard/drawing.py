"""The Monitor's "Now drawing": the newest preview frame of each running job, as ComfyUI sent it.

Frames come from the API (`GET /jobs/<id>/preview`, the URL a job's `preview` events carry). They are handed to
Gradio as files, not pictures: Gradio copies a file into its cache once, atomically, while a picture it is
given is rewritten under its hash every time, which a browser fetching the same frame could catch half
written. The files are named by their content and only the newest `KEEP` are kept.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from typing import Any

from linkpix.dashboard.apiclient import ApiClient, ApiError

SHOWN = 4  # running jobs shown at once
KEEP = 64  # frame files kept in the folder


class Drawing:
    """Fetches running jobs' newest frames into a private folder; `items` is what the gallery shows."""

    def __init__(self, folder: Path | None = None) -> None:
        self.folder = folder or Path(tempfile.mkdtemp(prefix="linkpix-drawing-"))

    def items(self, api: ApiClient, jobs: list[dict[str, Any]]) -> list[tuple[str, str]]:
        """(file, caption) of the newest frame of up to `SHOWN` running jobs (a job without one yet is left out)."""
        out = []
        for job in [j for j in jobs if j.get("status") == "running"][:SHOWN]:
            job_id = str(job.get("job_id", ""))
            try:
                data = api.image_bytes(f"/jobs/{job_id}/preview")
            except ApiError:
                continue  # no frame yet, or the job just ended
            progress = job.get("progress") if isinstance(job.get("progress"), dict) else {}
            step = f" · step {progress.get('step')}/{progress.get('total')}" if progress.get("total") else ""
            out.append((str(self._store(data)), f"{(job.get('prompt') or '')[:40]}{step}"))
        self._prune()
        return out

    def _store(self, data: bytes) -> Path:
        path = self.folder / f"{hashlib.sha256(data).hexdigest()[:24]}.jpg"
        if not path.exists():
            fd, staging = tempfile.mkstemp(dir=self.folder, prefix=".frame-")
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(staging, path)
        return path

    def _prune(self) -> None:
        files = sorted(self.folder.glob("*.jpg"), key=lambda p: p.stat().st_mtime)
        for old in files[:-KEEP]:
            old.unlink(missing_ok=True)
