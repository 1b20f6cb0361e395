"""The dashboard's static files: the vendored htmx is the one VENDORED.md names, and both files are served."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import httpx

import openline.web

STATIC = Path(openline.web.__file__).parent / "static" / "dashboard"
VENDOR = STATIC / "vendor"


def vendored() -> dict[str, str]:
    """File name → SHA-256, from the table in VENDORED.md."""
    rows = re.findall(r"^\| `([^`]+)`[^|]*\|(.*)\|\s*$", (VENDOR / "VENDORED.md").read_text(), re.MULTILINE)
    found = {}
    for name, rest in rows:
        digest = rest.rsplit("|", 1)[-1].strip().strip("`")
        assert re.fullmatch(r"[0-9a-f]{64}", digest), (name, digest)
        found[name] = digest
    return found


def test_every_vendored_file_matches_its_checksum() -> None:
    listed = vendored()
    assert "htmx.min.js" in listed
    for name, digest in listed.items():
        assert hashlib.sha256((VENDOR / name).read_bytes()).hexdigest() == digest, name
    # Nothing ships in vendor/ without a row (its licence file excepted).
    shipped = {p.name for p in VENDOR.iterdir() if p.suffix == ".js"}
    assert shipped <= set(listed), shipped - set(listed)


async def test_the_static_files_are_served(client: httpx.AsyncClient) -> None:
    script = await client.get("/dashboard/static/vendor/htmx.min.js")
    assert script.status_code == 200 and "javascript" in script.headers["content-type"]
    assert script.content == (VENDOR / "htmx.min.js").read_bytes()
    style = await client.get("/dashboard/static/dashboard.css")
    assert style.status_code == 200 and style.headers["content-type"].startswith("text/css")
