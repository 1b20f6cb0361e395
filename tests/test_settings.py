from __future__ import annotations

from pathlib import Path

import pytest

from openline.settings import Settings, SettingsError, load_settings


def test_defaults_are_the_embedded_setup() -> None:
    settings = load_settings()
    assert settings.database_url == "sqlite:///openline.db"
    assert (settings.host, settings.port) == ("127.0.0.1", 8000)
    assert settings.sandbox_verify_signatures is True


def test_environment_variables_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENLINE_PORT", "9001")
    monkeypatch.setenv("OPENLINE_PUBLIC_URL", "https://sms.example.org/")
    settings = load_settings()
    assert settings.port == 9001
    assert settings.public_url == "https://sms.example.org"


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("OPENLINE_PORT", "eighty", "OPENLINE_PORT: Input should be a valid integer"),
        ("OPENLINE_PORT", "70000", "OPENLINE_PORT: Input should be less than or equal to 65535"),
        ("OPENLINE_DATABASE_URL", "mysql://x/y", "OPENLINE_DATABASE_URL: expected a sqlite:///PATH or postgresql"),
        ("OPENLINE_DATABASE_URL", "sqlite://x.db", "OPENLINE_DATABASE_URL: expected sqlite:///PATH"),
        ("OPENLINE_PUBLIC_URL", "sms.example.org", "OPENLINE_PUBLIC_URL: expected an http:// or https://"),
        ("OPENLINE_LOG_LEVEL", "loud", "OPENLINE_LOG_LEVEL: Input should be 'debug', 'info', 'warning' or 'error'"),
        ("OPENLINE_SANDBOX_VERIFY_SIGNATURES", "maybe", "OPENLINE_SANDBOX_VERIFY_SIGNATURES: Input should be"),
        ("OPENLINE_DATABSE_URL", "sqlite:///x.db", "OPENLINE_DATABSE_URL: unknown setting"),
        ("OPENLINE_TELNYX_PUBLIC_KEY", "not a key!", "OPENLINE_TELNYX_PUBLIC_KEY: expected the base64 public key"),
        ("OPENLINE_TELNYX_PUBLIC_KEY", "AAAA", "OPENLINE_TELNYX_PUBLIC_KEY: expected a 32-byte Ed25519 key"),
        ("OPENLINE_VONAGE_SIGNATURE_METHOD", "crc32", "OPENLINE_VONAGE_SIGNATURE_METHOD: Input should be"),
    ],
)
def test_a_wrong_value_is_one_clear_line(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, expected: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError) as caught:
        load_settings()
    message = str(caught.value)
    assert message.startswith(expected)
    assert "\n" not in message


def test_secret_values_are_never_echoed(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = Settings(secret_key="hunter2-hunter2")
    assert "hunter2" not in repr(settings)
    assert "hunter2" not in str(settings.model_dump())


def test_toml_file_is_read_and_environment_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "openline.toml").write_text('port = 9100\ncommunity_name = "Ashton"\n')
    assert load_settings().port == 9100
    assert load_settings().community_name == "Ashton"
    monkeypatch.setenv("OPENLINE_PORT", "9200")
    assert load_settings().port == 9200


def test_toml_errors_name_the_setting(tmp_path: Path) -> None:
    (tmp_path / "openline.toml").write_text('port = "x"\ncolour = "red"\n')
    with pytest.raises(SettingsError) as caught:
        load_settings()
    assert "OPENLINE_PORT" in str(caught.value)
    assert "OPENLINE_COLOUR: unknown setting" in str(caught.value)


def test_unparsable_toml_is_reported(tmp_path: Path) -> None:
    (tmp_path / "openline.toml").write_text("port = = 1\n")
    with pytest.raises(SettingsError, match=r"openline.toml: "):
        load_settings()


def test_config_variable_must_name_a_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENLINE_CONFIG", str(tmp_path / "missing.toml"))
    with pytest.raises(SettingsError, match="OPENLINE_CONFIG: no such file"):
        load_settings()
    (tmp_path / "other.toml").write_text("port = 8443\n")
    monkeypatch.setenv("OPENLINE_CONFIG", str(tmp_path / "other.toml"))
    assert load_settings().port == 8443
