"""Start the LinkPix dashboard alone: `python gradio_app.py [--config config.json] [--port N]` (see README).

`start_server.py` starts it beside the API; the dashboard talks to the API at http://127.0.0.1:<api_port>
(or LINKPIX_API_URL).
"""

import argparse
import sys

from linkpix.dashboard.context import DashboardContext
from linkpix.dashboard.server import serve_forever
from linkpix.errors import ConfigError


def main() -> int:
    parser = argparse.ArgumentParser(description="LinkPix dashboard (Gradio)")
    parser.add_argument("--config", default="config.json", help="path of config.json")
    parser.add_argument("--port", type=int, help="override web_port")
    args = parser.parse_args()
    try:
        return serve_forever(DashboardContext.open(args.config), args.port)
    except ConfigError as exc:
        print(f"LinkPix dashboard cannot start: {exc.message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
