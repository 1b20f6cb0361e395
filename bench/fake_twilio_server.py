"""The fake Twilio as its own process for the dispatch benchmark (so it does not share the dispatcher's
interpreter). ``python -m bench.fake_twilio_server PORT ACCOUNT_SID AUTH_TOKEN NUMBER...``.

``GET /bench/sent`` lists what it accepted: sender, segments and the monotonic time each request arrived
(the clock is system-wide on Linux, so the benchmark can compare it with its own); ``POST /bench/reset``
forgets it.
"""

from __future__ import annotations

import sys

import uvicorn
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from openline.providers.fake_twilio import FakeTwilio


def main() -> None:
    port, sid, token, numbers = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4:]
    fake = FakeTwilio(sid, token)
    for number in numbers:
        fake.add_number(number)

    async def sent(_request: Request) -> JSONResponse:
        return JSONResponse([[m.from_, m.num_segments, m.received_at] for m in fake.sent])

    async def reset(_request: Request) -> JSONResponse:
        fake.reset()
        return JSONResponse({})

    fake.app.router.routes.append(Route("/bench/sent", sent))
    fake.app.router.routes.append(Route("/bench/reset", reset, methods=["POST"]))
    uvicorn.run(
        fake.app, host="127.0.0.1", port=port, loop="uvloop", http="httptools", access_log=False, log_level="warning"
    )


if __name__ == "__main__":
    main()
