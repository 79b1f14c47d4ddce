"""Configuration: file + environment, secrets refused in the file, keyring lookup, errors that name the key."""

from __future__ import annotations

from pathlib import Path

import keyring
import pytest
from keyring.backend import KeyringBackend
from keyring.errors import NoKeyringError

from engine.settings import ConfigError, config_path, get_secret, load_config, require_secret

CONFIG = """
database_url = "sqlite:///tmp/trueup-test.db"

[vendor.pax8]
client_id = "pax8-id"

[vendor.product_kinds]
"PPE-BUS" = "endpoint_usage"

[psa]
kind = "connectwise"

[psa.connectwise]
site = "api-na.myconnectwise.net"
company_id = "acme"
public_key = "pub"
client_id = "cid"

[console]
refresh_interval = 120
[console.keymap]
ignore-row = "i,delete"

[billing]
description_prefix = "Cloud"
timezone = "America/Denver"
"""


class MemoryKeyring(KeyringBackend):
    priority = 1  # type: ignore[assignment]

    def __init__(self) -> None:
        super().__init__()
        self.store: dict[tuple[str, str], str] = {}

    def get_password(self, service: str, username: str) -> str | None:
        return self.store.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        self.store[(service, username)] = password

    def delete_password(self, service: str, username: str) -> None:
        self.store.pop((service, username), None)


class NoKeyring(KeyringBackend):
    priority = 0  # type: ignore[assignment]

    def get_password(self, service: str, username: str) -> str | None:
        raise NoKeyringError("no backend")

    def set_password(self, service: str, username: str, password: str) -> None:
        raise NoKeyringError("no backend")

    def delete_password(self, service: str, username: str) -> None:
        raise NoKeyringError("no backend")


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    import os

    for name in list(os.environ):
        if name.upper().startswith("TRUEUP_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    previous = keyring.get_keyring()
    memory = MemoryKeyring()
    keyring.set_keyring(memory)
    yield memory
    keyring.set_keyring(previous)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "trueup.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_path_from_env_and_default(monkeypatch, tmp_path):
    assert config_path() == tmp_path / "xdg" / "trueup" / "trueup.toml"
    monkeypatch.setenv("TRUEUP_CONFIG", str(tmp_path / "elsewhere.toml"))
    assert config_path() == tmp_path / "elsewhere.toml"


def test_no_file_no_env_is_sandbox(tmp_path):
    config = load_config(tmp_path / "missing.toml")
    assert config.is_sandbox
    assert config.path is None
    assert config.console.refresh_interval == 300
    assert config.console.theme == "textual-dark"
    assert config.console.mouse is True


def test_file_loaded(tmp_path):
    path = write(tmp_path, CONFIG)
    config = load_config(path)
    assert not config.is_sandbox
    assert config.path == path
    assert config.vendor.pax8.client_id == "pax8-id"
    assert config.vendor.product_kinds == {"PPE-BUS": "endpoint_usage"}
    assert config.psa.kind == "connectwise"
    assert config.psa.connectwise.site == "api-na.myconnectwise.net"
    assert config.console.refresh_interval == 120
    assert config.console.keymap == {"ignore-row": "i,delete"}
    assert config.billing.overrides() == {"description_prefix": "Cloud"}
    assert config.billing.timezone == "America/Denver"


def test_env_wins_over_file(monkeypatch, tmp_path):
    path = write(tmp_path, CONFIG)
    monkeypatch.setenv("TRUEUP_CONSOLE__REFRESH_INTERVAL", "60")
    monkeypatch.setenv("TRUEUP_PSA__CONNECTWISE__SITE", "api-eu.myconnectwise.net")
    monkeypatch.setenv("TRUEUP_CONSOLE__MOUSE", "false")
    config = load_config(path)
    assert config.console.refresh_interval == 60
    assert config.console.mouse is False
    assert config.psa.connectwise.site == "api-eu.myconnectwise.net"
    assert config.psa.connectwise.company_id == "acme"  # the rest of the table still comes from the file


def test_env_only_configuration(monkeypatch, tmp_path):
    monkeypatch.setenv("TRUEUP_VENDOR__PAX8__CLIENT_ID", "id")
    monkeypatch.setenv("TRUEUP_PSA__KIND", "halopsa")
    monkeypatch.setenv("TRUEUP_PSA__HALOPSA__BASE_URL", "https://acme.halopsa.com")
    monkeypatch.setenv("TRUEUP_PSA__HALOPSA__CLIENT_ID", "hid")
    config = load_config(tmp_path / "missing.toml")
    assert not config.is_sandbox
    assert config.psa.selected.base_url == "https://acme.halopsa.com"


@pytest.mark.parametrize(
    "section,key,env",
    [
        ("[vendor.pax8]\nclient_id = 'x'\n", "vendor.pax8.client_secret", "TRUEUP_PAX8_CLIENT_SECRET"),
        ("[psa.connectwise]\nsite = 'x'\n", "psa.connectwise.private_key", "TRUEUP_CONNECTWISE_PRIVATE_KEY"),
        ("[psa.autotask]\nusername = 'x'\n", "psa.autotask.secret", "TRUEUP_AUTOTASK_SECRET"),
    ],
)
def test_secret_in_file_refused(tmp_path, section, key, env):
    name = key.rsplit(".", 1)[1]
    path = write(tmp_path, section + f"{name} = 'hunter2'\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert str(path) in message and key in message and env in message
    assert "hunter2" not in message


def test_secret_in_nested_env_refused(monkeypatch, tmp_path):
    monkeypatch.setenv("TRUEUP_PSA__HALOPSA__CLIENT_SECRET", "hunter2")
    with pytest.raises(ConfigError, match="TRUEUP_HALOPSA_CLIENT_SECRET"):
        load_config(tmp_path / "missing.toml")


def test_errors_name_file_key_and_problem(tmp_path):
    path = write(
        tmp_path,
        CONFIG.replace('client_id = "cid"\n', "").replace(
            "refresh_interval = 120", 'refresh_interval = "soon"'
        ),
    )
    with pytest.raises(ConfigError) as info:
        load_config(path)
    lines = str(info.value).splitlines()
    assert any(line.startswith(f"{path}: psa.connectwise.client_id: required") for line in lines), lines
    assert any(
        line.startswith(f"{path}: console.refresh_interval:") and "'soon'" in line for line in lines
    ), lines
    assert "Traceback" not in str(info.value)


def test_error_names_env_var(monkeypatch, tmp_path):
    monkeypatch.setenv("TRUEUP_CONSOLE__REFRESH_INTERVAL", "often")
    with pytest.raises(
        ConfigError,
        match=r"environment variable TRUEUP_CONSOLE__REFRESH_INTERVAL: "
        r"console\.refresh_interval",
    ):
        load_config(tmp_path / "missing.toml")


def test_unknown_key_and_bad_toml_and_missing_section(tmp_path):
    with pytest.raises(ConfigError, match=r"console\.colour: unknown key"):
        load_config(write(tmp_path, "[console]\ncolour = 'red'\n"))
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(write(tmp_path, "[console\n"))
    with pytest.raises(ConfigError, match=r"psa: kind is 'halopsa' but there is no \[psa.halopsa\] section"):
        load_config(write(tmp_path, "[vendor.pax8]\nclient_id='x'\n[psa]\nkind = 'halopsa'\n"))
    with pytest.raises(ConfigError, match="unknown time zone"):
        load_config(write(tmp_path, "[billing]\ntimezone = 'Mars/Olympus'\n"))


def test_secret_from_env_then_keyring(monkeypatch, clean_env):
    assert get_secret("pax8") is None
    clean_env.set_password("trueup", "pax8", "from-keyring")
    secret = get_secret("pax8")
    assert secret.get_secret_value() == "from-keyring"
    assert "from-keyring" not in repr(secret)
    monkeypatch.setenv("TRUEUP_PAX8_CLIENT_SECRET", "from-env")
    assert get_secret("pax8").get_secret_value() == "from-env"


def test_missing_secret_says_how_to_set_it():
    keyring.set_keyring(NoKeyring())
    assert get_secret("connectwise") is None  # no backend is "no secret", not a crash
    with pytest.raises(
        ConfigError, match=r"TRUEUP_CONNECTWISE_PRIVATE_KEY or run `trueup login connectwise`"
    ):
        require_secret("connectwise")
