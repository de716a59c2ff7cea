"""A file name the client chose comes back in Content-Disposition whatever it holds (web/disposition.py): a v2
asset's `file_path` and a ComfyUI-front upload's name, over real sockets. Names outside Latin-1 were a 500."""

from __future__ import annotations

import urllib.parse

import requests
from fronts_support import png_bytes
from werkzeug.http import parse_options_header

NAMES = ["plain.png", "été 写真.png", 'quo"te.png', "back\\slash.png", "line\r\nSet-Cookie: a=b.png"]


def named(header: str) -> str:
    """The file name a client reads from the header (filename*, else filename), as RFC 6266 says."""
    kind, options = parse_options_header(header)
    assert kind == "inline"
    if "filename*" in options:
        charset, _, quoted = options["filename*"].partition("''")
        assert charset.upper() == "UTF-8"
        return urllib.parse.unquote(quoted)
    return options["filename"]


def test_an_assets_file_path_comes_back_as_it_was_sent(fronts):
    for n, name in enumerate(NAMES):
        up = requests.post(fronts.url + "/api/v2/assets", files={"file": ("f.png", png_bytes(color=(n, 1, 2)))},
                           data={"file_path": name}, timeout=30)
        assert up.status_code == 201, up.text
        content = requests.get(up.json()["url"], timeout=30)
        assert content.status_code == 200 and content.content == png_bytes(color=(n, 1, 2))
        assert "Set-Cookie" not in content.headers
        assert named(content.headers["Content-Disposition"]) == name.replace("\r\n", "")


def test_a_comfyui_front_uploads_name_comes_back_as_it_was_sent(fronts):
    base = fronts.url + "/comfy"
    for n, name in enumerate(NAMES[:2]):  # ComfyUI's own upload keeps a name with no quote or line in it
        up = requests.post(base + "/upload/image", files={"image": (name, png_bytes(color=(n, 9, 9)), "image/png")},
                           data={"type": "input"}, timeout=30)
        assert up.status_code == 200 and up.json()["name"] == name, up.text
        shown = requests.get(f"{base}/view?filename={urllib.parse.quote(name)}&type=input", timeout=30)
        assert shown.status_code == 200 and shown.content == png_bytes(color=(n, 9, 9))
        assert named(shown.headers["Content-Disposition"]) == name
