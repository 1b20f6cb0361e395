"""The server the ingest benchmark loads: openline's real app plus a bare form-parsing endpoint.

Run as ``python -m bench.ingest_server DATABASE_URL PORT AUTH_TOKEN [serve]``; with ``serve`` the
conversation engine runs in the same process, as under ``openline serve``. ``POST /bench/form`` reads the
body and parses the form exactly as the webhooks do, then answers with the same empty TwiML, touching
no database and checking no signature; ``POST /bench/starlette-form`` does the same with the framework's
own ``request.form()``, as a plain endpoint would. They are the ceilings the durable, verified ingest is
compared with, in the same process, on the same server.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import uvicorn
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from openline.providers.base import WebhookRequest
from openline.providers.twilio import EMPTY_TWIML
from openline.runtime import Runtime
from openline.settings import Settings
from openline.web import create_app
from openline.worker import run_background


def main() -> None:
    database_url, port, token = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    settings = Settings(
        database_url=database_url,
        public_url=f"http://127.0.0.1:{port}",
        twilio_auth_token=token,
        simulator=False,
        log_level="warning",
        spool_dir=Path(tempfile.gettempdir()) / f"openline-bench-spool-{port}",
    )
    runtime = Runtime.open(settings, migrate=True)
    app = create_app(runtime, background=run_background if sys.argv[4:] == ["serve"] else None)

    async def bare_form(request: Request) -> Response:
        body = await request.body()
        WebhookRequest(request.method, str(request.url), request.headers, body).form()
        return Response(EMPTY_TWIML, media_type="application/xml")

    async def starlette_form(request: Request) -> Response:
        async with request.form():  # the framework's own form parsing, as a plain endpoint would use it
            return Response(EMPTY_TWIML, media_type="application/xml")

    # Routed exactly as the webhooks are (plain Starlette routes), so only their work differs.
    app.router.routes.append(Route("/bench/form", bare_form, methods=["POST"]))
    app.router.routes.append(Route("/bench/starlette-form", starlette_form, methods=["POST"]))

    uvicorn.run(
        app, host="127.0.0.1", port=port, loop="uvloop", http="httptools", access_log=False, log_level="warning"
    )


if __name__ == "__main__":
    main()
