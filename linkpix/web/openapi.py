"""GET /openapi.json: the API description, built from the views' own docstrings by apispec.

Each view documents itself in YAML after a `---` line, so a route and its description live side by side
and a test can check that every route of the app is described. The shapes they name are in
`apischemas.py`. What every route does alike is written down here, once, as the guards do it once: a
query string or a body that fails its checks is a 400 (a parameter given twice, say), a body over the
limit a 413, and an error answers in its surface's own shape (LinkPix's, or the tool's a front speaks),
as a PNG for the image routes' `<img>` clients.
"""

from __future__ import annotations

from typing import Any

from apispec import APISpec
from apispec.yaml_utils import load_operations_from_docstring
from apispec_webframeworks.flask import FlaskPlugin
from flask import Blueprint, Flask, Response, current_app, jsonify

from linkpix import __version__
from linkpix.web.apischemas import ERROR_SCHEMA_OF, components, file_responses
from linkpix.web.openapilinks import add_links
from linkpix.web.openapinames import with_names
from linkpix.web.services import services

bp = Blueprint("openapi", __name__)

METHODS = ("get", "put", "post", "delete", "patch")
IMAGE_PATHS = ("/prompt/{text}", "/images/{user}/{filename}")
IMAGE_TYPES = "image/png, image/jpeg, image/webp, image/gif"  # what uploads/decoding take (a file part's kinds)


def build_spec(app: Flask) -> dict:
    spec = APISpec(title="LinkPix", version=__version__, openapi_version="3.0.3",
                   plugins=[FlaskPlugin()],
                   info={"description": "Turn a URL into an image rendered by ComfyUI."})
    for name, schema in components().items():
        spec.components.schema(name, schema)
    for name, response in file_responses().items():
        spec.components.response(name, response)
    blueprints: dict[str, str] = {}
    with app.test_request_context():
        for name, view in app.view_functions.items():
            if name == "static" or not load_operations_from_docstring(view.__doc__ or ""):
                continue
            spec.path(view=view, app=app)
            for rule in app.url_map.iter_rules(name):
                blueprints[FlaskPlugin.flaskpath2openapi(rule.rule)] = name.partition(".")[0]
    document = spec.to_dict()
    for path, item in document["paths"].items():
        for method in METHODS:
            if method in item:
                _complete(path, item[method], ERROR_SCHEMA_OF.get(blueprints.get(path, ""), "Error"))
    add_links(document)  # create -> read, follow, cancel, delete (web/openapilinks.py)
    return document


def _complete(path: str, operation: dict[str, Any], error_schema: str) -> None:
    """Add what the guards and the error handlers do on every route, in the route's own error shape."""
    _image_parts(operation)
    responses = operation.setdefault("responses", {})
    takes_query = any(p.get("in") == "query" for p in operation.get("parameters", []))
    if (takes_query or "requestBody" in operation) and "400" not in responses:
        responses["400"] = {"description": "a parameter is invalid or given twice; the message says which"}
    if "requestBody" in operation and "413" not in responses:
        responses["413"] = {"description": "the body is larger than the limit (one image of max_upload_mb, "
                                           "base64 included); it was not read"}
    error = {"schema": {"$ref": f"#/components/schemas/{error_schema}"}}
    for code, response in responses.items():
        if code.isdigit() and int(code) >= 400 and "content" not in response:
            response["content"] = {"application/json": error}
            if path in IMAGE_PATHS:  # an <img> client (or error_images) gets the message as a picture
                response["content"]["image/png"] = {"schema": {"type": "string", "format": "binary"}}


def _image_parts(operation: dict[str, Any]) -> None:
    """Every file part LinkPix takes is a picture: say which kinds, as each multipart body's `encoding`."""
    form = operation.get("requestBody", {}).get("content", {}).get("multipart/form-data")
    if form is None:
        return
    name = form.get("schema", {}).get("$ref", "").rpartition("/")[2]
    properties = components().get(name, form.get("schema", {})).get("properties", {})
    for field, schema in properties.items():
        if schema.get("format") == "binary":
            form.setdefault("encoding", {}).setdefault(field, {"contentType": IMAGE_TYPES})


@bp.get("/openapi.json")
def openapi() -> Response:
    """This description.
    ---
    get:
      summary: The OpenAPI description of every route
      responses:
        200:
          description: "OpenAPI 3 document"
          content:
            application/json: {schema: {type: object, required: [openapi, paths], properties: {paths: {type: object}}}}
    """
    spec = current_app.extensions.get("linkpix.openapi")
    if spec is None:  # built once (setdefault's argument would be built on every request, seconds each)
        spec = current_app.extensions["linkpix.openapi"] = build_spec(current_app)
    resolver = services().resolver
    names = (tuple(resolver.workflow_names()), tuple(resolver.styles()), tuple(resolver.workflows_taking("image")))
    served = current_app.extensions.get("linkpix.openapi.served")
    if served is None or served[0] != names:  # the instance's workflows and styles (web/openapinames.py)
        served = current_app.extensions["linkpix.openapi.served"] = (names, with_names(spec, *map(list, names)))
    return jsonify(served[1])
