"""GET /openapi.json: the API description, built from the views' own docstrings by apispec.

Each view documents itself in YAML after a `---` line, so a route and its description live side by side
and a test can check that every route of the app is described.
"""

from __future__ import annotations

from apispec import APISpec
from apispec.yaml_utils import load_operations_from_docstring
from apispec_webframeworks.flask import FlaskPlugin
from flask import Blueprint, Flask, Response, current_app, jsonify

from .. import __version__

bp = Blueprint("openapi", __name__)

ERROR_SCHEMA = {
    "type": "object",
    "required": ["error", "message"],
    "properties": {"error": {"type": "string"}, "message": {"type": "string"}, "details": {}},
}


def build_spec(app: Flask) -> dict:
    spec = APISpec(title="LinkPix", version=__version__, openapi_version="3.0.3",
                   plugins=[FlaskPlugin()],
                   info={"description": "Turn a URL into an image rendered by ComfyUI."})
    spec.components.schema("Error", ERROR_SCHEMA)
    with app.test_request_context():
        for name, view in app.view_functions.items():
            if name == "static" or not load_operations_from_docstring(view.__doc__ or ""):
                continue
            spec.path(view=view, app=app)
    return spec.to_dict()


@bp.get("/openapi.json")
def openapi() -> Response:
    """This description.
    ---
    get:
      summary: The OpenAPI description of every route
      responses:
        200: {description: "OpenAPI 3 document"}
    """
    spec = current_app.extensions.setdefault("linkpix.openapi", build_spec(current_app))
    return jsonify(spec)
