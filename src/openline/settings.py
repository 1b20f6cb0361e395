"""Settings from ``OPENLINE_*`` environment variables and an optional ``openline.toml``.

Environment variables win over the file. A wrong value stops the program with one line that names the
setting and says what is expected (:class:`SettingsError`).
"""

from __future__ import annotations

import base64
import os
from pathlib import Path
from typing import Any, Literal

import phonenumbers
from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

__all__ = ["Settings", "SettingsError", "load_settings"]

ENV_PREFIX = "OPENLINE_"
CONFIG_FILE_VARIABLE = "OPENLINE_CONFIG"
# Variables that share the prefix but configure the test suite and benchmarks, not the service.
_NOT_SETTINGS = ("OPENLINE_TEST_", "OPENLINE_BENCH_")


class SettingsError(Exception):
    """A setting has a value openline cannot use; the message is one line meant for the operator."""


class Settings(BaseSettings):
    """Every setting openline reads. Each field is documented in the README's configuration table."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="forbid", frozen=True)

    database_url: str = Field(
        "sqlite:///openline.db",
        description="Where openline keeps everything: `sqlite:///PATH` (embedded) or `postgresql://...`.",
    )
    public_url: str | None = Field(
        None,
        description="The base URL providers call (e.g. `https://sms.example.org`); webhook signatures "
        "are checked against it.",
    )
    secret_key: SecretStr | None = Field(
        None,
        description="Key for signing links and sandbox webhooks. Unset: one is generated once and kept "
        "in the database.",
    )
    host: str = Field("127.0.0.1", description="Address `openline serve`/`web` listens on.")
    port: int = Field(8000, ge=1, le=65535, description="Port `openline serve`/`web` listens on.")
    log_level: Literal["debug", "info", "warning", "error"] = Field("info", description="How much openline logs.")
    community_name: str = Field(
        "My community",
        min_length=1,
        description="Name of the community the embedded default creates on first start.",
    )
    sandbox_verify_signatures: bool = Field(
        True,
        description="Check the signature on `/webhooks/sandbox` requests. Only turn off for local tests.",
    )
    simulator: bool = Field(True, description="Serve the phone simulator at `/simulator` (sandbox senders only).")
    twilio_account_sid: str | None = Field(
        None, description="Twilio account SID; webhooks from any other account are refused."
    )
    twilio_auth_token: SecretStr | None = Field(
        None, description="Twilio auth token: checks `X-Twilio-Signature` on `/webhooks/twilio`."
    )
    twilio_api_url: str = Field(
        "https://api.twilio.com", description="Base URL of Twilio's REST API (tests point it at a local fake)."
    )
    twilio_messaging_service_sid: str | None = Field(
        None, description="Send through this Twilio Messaging Service (as well as from the sender's number)."
    )
    vonage_signature_secret: SecretStr | None = Field(
        None, description="Vonage signature secret: checks the `sig` of signed SMS webhooks on `/webhooks/vonage`."
    )
    vonage_signature_method: Literal["md5hash", "md5", "sha1", "sha256", "sha512"] = Field(
        "md5hash", description="The signature method chosen in the Vonage dashboard."
    )
    telnyx_public_key: str | None = Field(
        None, description="Telnyx public key (base64, from the Keys page): checks Ed25519 webhook signatures."
    )
    plivo_auth_token: SecretStr | None = Field(
        None, description="Plivo auth token: checks `X-Plivo-Signature-V3` on `/webhooks/plivo`."
    )
    vonage_api_key: str | None = Field(None, description="Vonage API key: sending through Vonage needs it.")
    vonage_api_secret: SecretStr | None = Field(None, description="Vonage API secret (with the key).")
    vonage_api_url: str = Field("https://rest.nexmo.com", description="Base URL of Vonage's SMS API.")
    telnyx_api_key: SecretStr | None = Field(None, description="Telnyx API key: sending through Telnyx needs it.")
    telnyx_api_url: str = Field("https://api.telnyx.com", description="Base URL of Telnyx's API.")
    telnyx_messaging_profile_id: str | None = Field(None, description="Telnyx messaging profile to send with.")
    plivo_auth_id: str | None = Field(
        None, description="Plivo auth ID: sending through Plivo needs it (with the token)."
    )
    plivo_api_url: str = Field("https://api.plivo.com", description="Base URL of Plivo's API.")
    smpp_host: str | None = Field(None, description="SMSC host to send through over SMPP 3.4 (with the system ID).")
    smpp_port: int = Field(2775, ge=1, le=65535, description="SMSC port for SMPP.")
    smpp_system_id: str | None = Field(None, description="SMPP system ID (login) to bind to the SMSC with.")
    smpp_password: SecretStr | None = Field(None, description="SMPP password to bind with.")
    smpp_system_type: str = Field("", description="SMPP system_type to bind with, if the SMSC wants one.")
    webhook_tolerance_seconds: int = Field(
        300, ge=1, le=86_400, description="How old a timestamped webhook may be before it is refused as a replay."
    )
    spool_dir: Path = Field(
        Path("openline-spool"),
        description="Where inbound texts wait on local disk while the database is unavailable.",
    )
    dispatcher_lease_seconds: float = Field(
        15.0, gt=0.5, le=600, description="How long a worker's hold on a sender lasts without renewal."
    )
    writer_max_batch: int = Field(
        1000, ge=1, le=100_000, description="Most writes the group-commit writer puts in one transaction."
    )
    default_country: str | None = Field(
        None,
        description="ISO country code (e.g. `US`) of numbers written without a country code in member imports.",
    )
    retention_days: int | None = Field(
        None,
        ge=1,
        description="Blank the text and media of messages older than this many days (unset: keep them forever).",
    )

    @field_validator("database_url")
    @classmethod
    def _known_database(cls, value: str) -> str:
        scheme = value.split(":", 1)[0]
        if scheme not in {"sqlite", "postgresql", "postgresql+psycopg", "postgres"}:
            raise ValueError("expected a sqlite:///PATH or postgresql://USER@HOST/DATABASE URL")
        if scheme == "sqlite" and not value.startswith("sqlite:///"):
            raise ValueError("expected sqlite:///PATH (three slashes, then the file path)")
        return value

    @field_validator("public_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not value.startswith(("http://", "https://")) or value[-3:] == "://":
            raise ValueError("expected an http:// or https:// base URL such as https://sms.example.org")
        return value.rstrip("/")

    @field_validator("default_country")
    @classmethod
    def _country(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if value.strip().upper() not in phonenumbers.SUPPORTED_REGIONS:
            raise ValueError("expected an ISO 3166 country code with a numbering plan, e.g. US, IT or GB")
        return value.strip().upper()

    @field_validator("telnyx_public_key")
    @classmethod
    def _ed25519_key(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            raw = base64.b64decode(value.strip(), validate=True)
        except ValueError:
            raise ValueError("expected the base64 public key from the Telnyx portal (Keys page)") from None
        if len(raw) != 32:
            raise ValueError(f"expected a 32-byte Ed25519 key in base64, got {len(raw)} bytes")
        return value.strip()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml_path = Path(os.environ.get(CONFIG_FILE_VARIABLE, "openline.toml"))
        return (init_settings, env_settings, TomlConfigSettingsSource(settings_cls, toml_file=toml_path))


def _describe(error: dict[str, Any]) -> str:
    name = ENV_PREFIX + "_".join(str(part) for part in error["loc"]).upper()
    if error["type"] == "extra_forbidden":
        return f"{name}: unknown setting (see the configuration table in the README)"
    message = str(error["msg"]).removeprefix("Value error, ")
    value = error.get("input")
    shown = "" if isinstance(value, dict) or "secret" in name.lower() else f" (got {value!r})"
    return f"{name}: {message}{shown}"


def load_settings(**overrides: Any) -> Settings:
    """Read settings, turning any invalid value into one clear :class:`SettingsError` line."""
    toml_path = Path(os.environ.get(CONFIG_FILE_VARIABLE, "openline.toml"))
    known = {ENV_PREFIX + name.upper() for name in Settings.model_fields} | {CONFIG_FILE_VARIABLE}
    for variable in sorted(os.environ):
        if variable.startswith(ENV_PREFIX) and variable not in known and not variable.startswith(_NOT_SETTINGS):
            raise SettingsError(f"{variable}: unknown setting (see the configuration table in the README)")
    if CONFIG_FILE_VARIABLE in os.environ and not toml_path.is_file():
        raise SettingsError(f"{CONFIG_FILE_VARIABLE}: no such file {str(toml_path)!r}")
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        raise SettingsError("; ".join(_describe(dict(e)) for e in exc.errors())) from None
    except ValueError as exc:  # an unparsable openline.toml
        raise SettingsError(f"{toml_path}: {exc}") from None
