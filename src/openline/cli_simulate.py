"""`openline simulate ...`: rehearse launch night on this machine (see docs/simulate.md).

``flood`` posts thousands of realistic, signed provider webhooks to a running openline and reports what a
provider would see and what openline kept; ``carrier`` runs a local provider API with a carrier behind it
(throughput, queue expiry, daily caps, failures, opt-outs, signed status callbacks) for openline's real
adapters to send through.
"""

from __future__ import annotations

import asyncio
import base64
import signal
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Annotated
from urllib.parse import urlsplit

import typer

from openline.cli_common import fail, out, settings_or_exit
from openline.settings import Settings

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from openline.simulate.carrier import Dialect

# openline.simulate is imported by the commands themselves: every other `openline` command starts faster.

__all__ = ["DEFAULT_LANGUAGES", "app", "share"]

DEFAULT_LANGUAGES = "en,it,hi,es"  # openline.simulate.story.LANGUAGES (a test keeps them equal)
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")

app = typer.Typer(help="Rehearse launch night on this machine (see docs/simulate.md).", no_args_is_help=True)


def share(text: str) -> float:
    """``5%`` or ``0.05`` as 0.05."""
    written = text.strip()
    try:
        value = float(written[:-1]) / 100 if written.endswith("%") else float(written)
    except ValueError:
        raise typer.BadParameter(f"expected a share like 5% or 0.05 (got {text!r})") from None
    if not 0 <= value <= 1:
        raise typer.BadParameter(f"expected a share from 0% to 100% (got {text!r}; write 5% or 0.05)")
    return value


def _real_sending(settings: Settings) -> str | None:
    """Why a flood here would text real phones, if it would: Twilio sending set up against a remote API."""
    if not (settings.twilio_account_sid and settings.twilio_auth_token is not None):
        return None
    host = urlsplit(settings.twilio_api_url).hostname
    if host in LOOPBACK_HOSTS:
        return None
    return (
        f"openline is set up to send through Twilio's real API ({settings.twilio_api_url}): the autotexts to the "
        "flood's made-up numbers would be real texts to whoever owns them. Point OPENLINE_TWILIO_API_URL at the "
        "carrier simulator (openline simulate carrier; e.g. http://127.0.0.1:8089), or unset "
        "OPENLINE_TWILIO_ACCOUNT_SID, for both this command and the server"
    )


@app.command("flood")
def flood(
    to: Annotated[str, typer.Option("--to", help="The community's number everyone texts (a twilio sender).")],
    people: Annotated[int, typer.Option(min=1, help="How many different people text.")] = 40_000,
    texts: Annotated[int, typer.Option(min=1, help="Texts in all (each person sends at least one).")] = 100_000,
    rate: Annotated[float, typer.Option(min=0, help="Requests per second (0: as fast as possible).")] = 2_000,
    replays: Annotated[str, typer.Option(help="Share of texts posted twice, as a retrying provider does.")] = "5%",
    languages: Annotated[str, typer.Option(help=f"Comma-separated, from {DEFAULT_LANGUAGES}.")] = DEFAULT_LANGUAGES,
    url: Annotated[
        str | None, typer.Option(help="The running openline (loopback only). [default: OPENLINE_HOST:OPENLINE_PORT]")
    ] = None,
    provider: Annotated[str, typer.Option(help="Whose webhooks to send (twilio).")] = "twilio",
    duration_limit: Annotated[float, typer.Option(min=1, help="Stop sending after this many seconds.")] = 600,
    settle: Annotated[
        float, typer.Option(min=0, help="Seconds to wait for the engine and dispatcher to catch up.")
    ] = 60,
    database_url: Annotated[
        str | None, typer.Option(help="The database to check. [default: OPENLINE_DATABASE_URL]")
    ] = None,
    no_database: Annotated[bool, typer.Option("--no-database", help="Only measure the answers.")] = False,
    connections: Annotated[int, typer.Option(min=1, max=1024, help="Keep-alive connections.")] = 64,
    seed: Annotated[int | None, typer.Option(help="Repeat a run's people, texts and ids exactly.")] = None,
) -> None:
    """Flood a running openline with realistic, signed texts; report answers, losses and autotext times."""
    from openline.simulate.flood import FloodPlan, check_loopback, render, run_flood

    settings = settings_or_exit()
    host = "127.0.0.1" if settings.host in ("0.0.0.0", "::") else settings.host
    base = url or f"http://{f'[{host}]' if ':' in host else host}:{settings.port}"
    try:
        base = check_loopback(base)
    except ValueError as exc:
        fail(str(exc))
    if settings.twilio_auth_token is None:
        fail("OPENLINE_TWILIO_AUTH_TOKEN is not set: the flood signs its webhooks with the token openline checks")
    reason = _real_sending(settings)
    if reason is not None:
        fail(reason)
    plan = FloodPlan(
        url=base,
        to=to,
        auth_token=settings.twilio_auth_token.get_secret_value(),
        account_sid=settings.twilio_account_sid or "AC" + "0" * 32,
        people=people,
        texts=texts,
        rate=rate or None,
        replays=share(replays),
        languages=tuple(language.strip() for language in languages.split(",") if language.strip()),
        time_limit=duration_limit,
        public_url=settings.public_url,
        provider=provider,
        connections=connections,
        seed=seed,
    )
    try:
        report = asyncio.run(
            run_flood(plan, None if no_database else database_url or settings.database_url, settle_seconds=settle)
        )
    except ValueError as exc:
        fail(str(exc))
    for line in render(report):
        out.print(line, markup=False)
    findings = report.database
    if report.acknowledged < report.posted or (
        findings is not None and (findings.texts.lost or findings.texts.duplicated)
    ):
        raise typer.Exit(1)


def _telnyx_key(path: Path | None) -> Ed25519PrivateKey:
    """The key the simulator signs Telnyx callbacks with: kept in ``path`` (made on first use), or a new one."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

    if path is None:
        return Ed25519PrivateKey.generate()
    if path.exists():
        return Ed25519PrivateKey.from_private_bytes(base64.b64decode(path.read_text().strip()))
    key = Ed25519PrivateKey.generate()
    raw = key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    path.touch(mode=0o600)
    path.write_text(base64.b64encode(raw).decode("ascii") + "\n")
    return key


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


@app.command("carrier")
def carrier(
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port on 127.0.0.1 to serve the API on.")] = 8089,
    provider: Annotated[str, typer.Option(help="Whose API to speak: twilio or telnyx.")] = "twilio",
    mps: Annotated[float, typer.Option(min=0.001, help="Segments per second each sender number lets out.")] = 1.0,
    daily_cap: Annotated[int | None, typer.Option(min=1, help="Segments per number per day (Pacific).")] = None,
    fail_share: Annotated[str, typer.Option("--fail", help="Share of texts the network does not deliver.")] = "0%",
    latency_ms: Annotated[float, typer.Option(min=0, help="How long the API takes to answer.")] = 50,
    delivery_ms: Annotated[float, typer.Option(min=0, help="From 'sent' to 'delivered'.")] = 1000,
    validity: Annotated[
        float | None, typer.Option(min=1, help="Seconds a text may wait when it asks nothing. [default: provider's]")
    ] = None,
    callback_url: Annotated[
        str | None,
        typer.Option(help="Post every status callback here (loopback), e.g. openline's /webhooks/.../status."),
    ] = None,
    numbers: Annotated[
        list[str] | None, typer.Option("--number", help="A number of the account (repeat); default: any.")
    ] = None,
    stop_numbers: Annotated[
        Path | None, typer.Option(exists=True, dir_okay=False, help="Numbers that texted STOP, one a line.")
    ] = None,
    account_sid: Annotated[
        str | None, typer.Option(help="Twilio account SID. [default: OPENLINE_TWILIO_ACCOUNT_SID]")
    ] = None,
    auth_token: Annotated[
        str | None, typer.Option(help="Twilio auth token. [default: OPENLINE_TWILIO_AUTH_TOKEN]")
    ] = None,
    api_key: Annotated[str | None, typer.Option(help="Telnyx API key. [default: OPENLINE_TELNYX_API_KEY]")] = None,
    telnyx_key_file: Annotated[
        Path | None,
        typer.Option(help="Where the Telnyx signing key is kept (made if missing). [default: new each run]"),
    ] = None,
    seed: Annotated[int | None, typer.Option(help="Repeat the same failures.")] = None,
) -> None:
    """Run a local carrier for openline's real adapters (OPENLINE_TWILIO_API_URL=http://127.0.0.1:PORT)."""
    import uvicorn

    from openline.simulate.carrier import Carrier, CarrierOptions
    from openline.simulate.carriers import TelnyxCarrier, TwilioCarrier, public_key

    settings = settings_or_exit()
    try:
        options = CarrierOptions(
            mps=mps,
            daily_cap=daily_cap,
            fail=share(fail_share),
            latency=latency_ms / 1000,
            delivery_delay=delivery_ms / 1000,
            validity=validity,
            callback_url=callback_url,
            seed=seed,
        )
    except ValueError as exc:
        fail(str(exc))
    given = tuple(numbers or ())
    dialect: Dialect
    if provider == "twilio":
        sid = account_sid or settings.twilio_account_sid
        token = auth_token or (settings.twilio_auth_token.get_secret_value() if settings.twilio_auth_token else None)
        if not sid or not token:
            fail("a Twilio account SID and auth token are needed (--account-sid/--auth-token or openline's settings)")
        dialect = TwilioCarrier(sid, token, given)
        point = f"OPENLINE_TWILIO_API_URL=http://127.0.0.1:{port}"
    elif provider == "telnyx":
        key = api_key or (settings.telnyx_api_key.get_secret_value() if settings.telnyx_api_key else None)
        if not key:
            fail("a Telnyx API key is needed (--api-key or OPENLINE_TELNYX_API_KEY)")
        signing = _telnyx_key(telnyx_key_file)
        dialect = TelnyxCarrier(key, signing, given)
        point = f"OPENLINE_TELNYX_API_URL=http://127.0.0.1:{port} OPENLINE_TELNYX_PUBLIC_KEY={public_key(signing)}"
    else:
        fail(f"the carrier speaks twilio or telnyx, not {provider!r}")
    simulator = Carrier(dialect, options)
    if stop_numbers is not None:
        for line in stop_numbers.read_text(encoding="utf-8").splitlines():
            if line.strip() and not line.lstrip().startswith("#"):
                simulator.opt_out(line.strip())
    out.print(
        f"{provider} carrier on http://127.0.0.1:{port} ({mps:g} segments/s per number); run openline with",
        markup=False,
    )
    out.print(f"  {point}", markup=False)
    public = settings.public_url
    if callback_url is None and public is not None and urlsplit(public).hostname not in LOOPBACK_HOSTS:
        out.print(
            f"  OPENLINE_PUBLIC_URL is {public}: callbacks only go to this machine, so pass --callback-url "
            f"http://127.0.0.1:{settings.port}/webhooks/{provider}/status to deliver them",
            markup=False,
        )

    async def serve() -> None:
        config = uvicorn.Config(simulator.app, host="127.0.0.1", port=port, log_level="warning", access_log=False)
        try:
            await uvicorn.Server(config).serve()
        finally:
            await simulator.aclose()

    # uvicorn shuts down gracefully on SIGINT/SIGTERM, then raises the signal again: as KeyboardInterrupt
    # for both, the counters below are still printed.
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        asyncio.run(serve())
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
    counts = ", ".join(f"{name} {count:,}" for name, count in simulator.stats()["counts"].items())
    out.print(f"carrier stopped: {counts or 'no messages'}", markup=False)
