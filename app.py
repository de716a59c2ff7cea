"""Start the LinkPix API alone: `python3 app.py [--config config.json] [--api-port N]` (see docs/operations.md)."""

import argparse
import errno

from linkpix.errors import ConfigError
from linkpix.run.api import logging_off_thread, serve
from linkpix.run.lifeline import follow_parent
from linkpix.web import create_app


def main() -> None:
    parser = argparse.ArgumentParser(description="LinkPix HTTP API")
    parser.add_argument("--config", default="config.json", help="path of config.json")
    # Both spellings, as start_server.py takes them: a newcomer who learnt one need not learn the other.
    parser.add_argument("--api-port", "--port", dest="port", type=int, help="port of the API (instead of api_port)")
    args = parser.parse_args()
    follow_parent()  # started by start_server.py: stop when it is gone
    with logging_off_thread():
        try:
            app = create_app(args.config)
        except ConfigError as exc:
            raise SystemExit(f"LinkPix cannot start: {exc.message}") from None
        services = app.extensions["linkpix"]
        settings = services.config.settings
        port = args.port or settings.api_port
        try:
            serve(app, settings.bind_host, port, settings.threads)
        except ConfigError as exc:  # a setting only the running server can judge (cpu_pin)
            raise SystemExit(f"LinkPix cannot start: {exc.message}") from None
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE:
                raise
            raise SystemExit(f"LinkPix cannot start: port {port} (api_port) on {settings.bind_host} is already "
                             "in use. Stop what uses it, or pick another port: --api-port N, \"api_port\" in "
                             "config.json, or LINKPIX_API_PORT=N.") from None
        finally:
            services.close()


if __name__ == "__main__":
    main()
