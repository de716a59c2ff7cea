"""A ComfyUI 0.3.64-compatible server for tests and demo mode; it draws labelled fakes, never AI images.

    from linkpix.simulator import SimulatorServer
    sim = SimulatorServer(port=0); sim.start(); ...; sim.stop()

Rooms: `server` (the loop, start/stop/restart/freeze), `state` (what the parts share: profile, folders,
faults, counters), `life` (what a restart forgets), `routes`/`files`/`jobsapi`/`wshub` (the protocol),
`executor`/`graph`/`nodes`/`editnodes` (running a prompt), `catalogue`/`validation`/`profiles` (what
it offers and checks), `images`/`grades`/`values` (the fake pictures).

Protocol truth: tests/comfyui_captures/ (PROTOCOL.md and the captures from a real ComfyUI 0.3.64).
"""

from linkpix.simulator.images import seed_colour
from linkpix.simulator.server import SimulatorServer
from linkpix.simulator.state import Faults

__all__ = ["Faults", "SimulatorServer", "seed_colour"]
