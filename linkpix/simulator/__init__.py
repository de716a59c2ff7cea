"""A ComfyUI 0.3.64-compatible server for tests and demo mode; it draws labelled fakes, never AI images.

    from linkpix.simulator import SimulatorServer
    sim = SimulatorServer(port=0); sim.start(); ...; sim.stop()

Protocol truth: tests/comfyui_captures/ (PROTOCOL.md and the captures from a real ComfyUI 0.3.64).
"""

from linkpix.simulator.images import seed_colour
from linkpix.simulator.server import Faults, SimulatorServer

__all__ = ["Faults", "SimulatorServer", "seed_colour"]
