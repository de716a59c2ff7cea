"""Start the LinkPix API alone: `python app.py [--config config.json]` (see README)."""

import argparse

from linkpix.errors import ConfigError
from linkpix.server import serve, setup_logging
from linkpix.web import create_app


def main() -> None:
    parser = argparse.ArgumentParser(description="LinkPix HTTP API")
    parser.add_argument("--config", default="config.json", help="path of config.json")
    parser.add_argument("--port", type=int, help="override api_port")
    args = parser.parse_args()
    setup_logging()
    try:
        app = create_app(args.config)
    except ConfigError as exc:
        raise SystemExit(f"LinkPix cannot start: {exc.message}") from None
    settings = app.extensions["linkpix"].config.settings
    serve(app, settings.bind_host, args.port or settings.api_port, settings.threads)


if __name__ == "__main__":
    main()
