"""The LinkPix dashboard (Gradio): one module per tab, composed in `app.py`, launched by `server.py`.

It edits the shared files only through `jsonstore` (and the workflow/style modules built on it) and
generates only through the HTTP API, so nothing it does needs a restart of the API and there is no
second generation path. This package file imports nothing, so the launcher can check the dashboard's
settings (`context.dashboard_auth`) without loading Gradio.
"""
