"""Start the LinkPix dashboard alone: `python gradio_app.py [--config config.json] [--port N]` (see README).

`start_server.py` starts it beside the API; the dashboard talks to the API at http://127.0.0.1:<api_port>
(or LINKPIX_API_URL).
"""

import argparse
import sys

from linkpix.dashboard.context import DashboardContext
from linkpix.dashboard.server import serve_forever
from linkpix.errors import ConfigError
from linkpix.run.lifeline import follow_parent


def main() -> int:
    parser = argparse.ArgumentParser(description="LinkPix dashboard (Gradio)")
    parser.add_argument("--config", default="config.json", help="path of config.json")
    parser.add_argument("--port", type=int, help="override web_port")
    args = parser.parse_args()
    follow_parent()  # started by start_server.py: stop when it is gone
    ctx = None
    try:
        ctx = DashboardContext.open(args.config)
        return serve_forever(ctx, args.port)
    except ConfigError as exc:
        print(f"LinkPix dashboard cannot start: {exc.message}", file=sys.stderr)
        return 2
    except OSError as exc:  # Gradio's own message names its GRADIO_SERVER_PORT, which is not our setting
        if "port" not in str(exc).lower():
            raise
        port = args.port or (ctx.settings.web_port if ctx is not None else "?")
        print(f"LinkPix dashboard cannot start: port {port} (web_port) is already in use. Stop what uses it, "
              "or pick another port: --port N (start_server.py: --web-port N), \"web_port\" in config.json, "
              "or LINKPIX_WEB_PORT=N.", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
