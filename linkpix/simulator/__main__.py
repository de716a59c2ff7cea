"""CLI: `python -m linkpix.simulator --port 8188 [--host 127.0.0.1] [--step-delay 0.05] [--root DIR]`
`[--name gpu1] [--checkpoints a.safetensors,b.safetensors] [--unets ...] [--loras ...] [--run-delay 0.5]`
`[--profile 0.3.64|current]`."""

from __future__ import annotations

import argparse
import logging
import signal
import threading
from pathlib import Path

from linkpix.run.lifeline import follow_parent
from linkpix.simulator.profiles import DEFAULT as DEFAULT_PROFILE
from linkpix.simulator.profiles import PROFILES
from linkpix.simulator.server import SimulatorServer


def _names(value: str) -> list[str]:
    return [n.strip() for n in value.split(",") if n.strip()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m linkpix.simulator",
                                     description="ComfyUI protocol simulator (draws labelled fakes, not AI).")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8188)
    parser.add_argument("--step-delay", type=float, default=0.05, help="seconds per sampler step")
    parser.add_argument("--root", type=Path, default=None, help="folder for input/ output/ temp/")
    parser.add_argument("--preview-method", default="auto", choices=["auto", "latent2rgb", "taesd", "none"])
    parser.add_argument("--name", default="", help="shown in /system_stats, to tell simulators in a pool apart")
    parser.add_argument("--checkpoints", type=_names, default=None, help="comma-separated checkpoint files")
    parser.add_argument("--unets", type=_names, default=None, help="comma-separated diffusion model files")
    parser.add_argument("--loras", type=_names, default=None, help="comma-separated LoRA files")
    parser.add_argument("--audio", action="store_true", help="with ComfyUI's EmptyAudio and SaveAudio nodes")
    parser.add_argument("--run-delay", type=float, default=0.0, help="seconds added to every run (model work)")
    parser.add_argument("--profile", default=DEFAULT_PROFILE, choices=list(PROFILES),
                        help="which ComfyUI to behave as: 0.3.64 (the captures) or current (today's server)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    follow_parent()  # started by start_server.py --demo: stop when it is gone
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    sim = SimulatorServer(host=args.host, port=args.port, root=args.root, step_delay=args.step_delay,
                          preview_method=args.preview_method, name=args.name, checkpoints=args.checkpoints,
                          unets=args.unets, loras=args.loras, run_delay=args.run_delay, profile=args.profile,
                          audio=args.audio)
    sim.start()
    logging.getLogger("linkpix.simulator").info(
        "LinkPix ComfyUI simulator%s (not AI, plays ComfyUI %s) listening on %s (root %s)",
        f" {args.name}" if args.name else "", sim.profile.version, sim.url, sim.root)
    try:
        while not stop.wait(0.5):
            pass
    finally:
        sim.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
