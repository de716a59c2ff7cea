"""Start the LinkPix API alone: `python3 app.py [--config config.json]` (see README)."""

import argparse

from linkpix.errors import ConfigError
from linkpix.server import logging_off_thread, serve
from linkpix.web import create_app


def main() -> None:
    parser = argparse.ArgumentParser(description="LinkPix HTTP API")
    parser.add_argument("--config", default="config.json", help="path of config.json")
    parser.add_argument("--port", type=int, help="override api_port")
    args = parser.parse_args()
    with logging_off_thread():
        try:
            app = create_app(args.config)
        except ConfigError as exc:
            raise SystemExit(f"LinkPix cannot start: {exc.message}") from None
        services = app.extensions["linkpix"]
        settings = services.config.settings
        try:
            serve(app, settings.bind_host, args.port or settings.api_port, settings.threads)
        finally:
            services.close()


if __name__ == "__main__":
    main()
