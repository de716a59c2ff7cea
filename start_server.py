"""Start LinkPix: `python start_server.py` (API + dashboard) or `python start_server.py --demo`."""

from linkpix.run.launcher import main

if __name__ == "__main__":
    raise SystemExit(main())
