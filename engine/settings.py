"""trueup's configuration: `trueup.toml` plus `TRUEUP_*` environment variables (pydantic-settings).

Where the file is: `$TRUEUP_CONFIG`, else `user_config_dir("trueup")/trueup.toml` (platformdirs).
Environment variables win over the file; nested keys use `__` (`TRUEUP_PSA__KIND=halopsa`,
`TRUEUP_CONSOLE__REFRESH_INTERVAL=120`, `TRUEUP_VENDOR__PAX8__CLIENT_ID=…`).

```toml
database_url = "postgresql://trueup@db/trueup"     # default: SQLite in the user data dir

[vendor.pax8]
client_id = "…"
[vendor.product_kinds]                             # SKU or Pax8 product id -> kind
"PPE-BUS" = "endpoint_usage"

[psa]
kind = "connectwise"                               # connectwise | halopsa | autotask
[psa.connectwise]
site = "api-na.myconnectwise.net"
company_id = "acme"
public_key = "…"
client_id = "…"                                    # the integration's clientId
# codebase = "v2025_1"                             # optional; discovered when absent
[psa.halopsa]
base_url = "https://acme.halopsa.com"
client_id = "…"
tenant = "acme"                                    # optional
[psa.autotask]
username = "api@acme.example"
integration_code = "…"
zone_url = "https://webservices5.autotask.net/atservicesrest/v1.0/"   # optional; discovered

[console]
refresh_interval = 300                             # seconds
theme = "textual-dark"
mouse = true
[console.keymap]                                   # binding id -> keys
ignore-row = "i,delete"

[billing]                                          # unset keys keep what the store holds
description_prefix = "Pax8"
threshold_prorates = true
prorate_counts_change_day = false
price_change_policy = "follow_retail"               # or keep_and_warn, keep_margin (engine.rules.leaks)
timezone = "America/Denver"                        # the partner's zone (default UTC)
```

**Secrets are never read from the file.** They come from an environment variable or the OS keyring
(`keyring.get_password("trueup", "<service>")`, written by `trueup login <service>`):

| service     | environment variable             | keyring user |
|-------------|----------------------------------|--------------|
| Pax8        | `TRUEUP_PAX8_CLIENT_SECRET`      | `pax8`       |
| ConnectWise | `TRUEUP_CONNECTWISE_PRIVATE_KEY` | `connectwise`|
| HaloPSA     | `TRUEUP_HALOPSA_CLIENT_SECRET`   | `halopsa`    |
| Autotask    | `TRUEUP_AUTOTASK_SECRET`         | `autotask`   |

A secret-looking key in the file (`client_secret`, `private_key`, `secret`, `password`, `token`…) is
refused with an error naming it. Secrets are `SecretStr` (masked in any repr), are never logged and
never reach the store.

No file and no vendor/PSA settings in the environment means the built-in sandbox
(`TrueupConfig.is_sandbox`). Any error is a `ConfigError` whose message names the file (or the
environment variable), the key and the problem, one line each, with no traceback.

Settings are read once (`load_config()`) and passed in; nothing in `engine/` reads them at import.
"""

from __future__ import annotations

import logging
import os
import tomllib
from collections.abc import Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict, SettingsError

from engine.config_file import APP as APP
from engine.config_file import CONFIG_ENV as CONFIG_ENV
from engine.config_file import ENV_PREFIX as ENV_PREFIX
from engine.config_file import FILE_NAME as FILE_NAME
from engine.config_file import config_path as config_path
from engine.psa import PSAS
from engine.scenario import PriceChangePolicy, ProductKind, PsaName
from engine.scrub import register_secret

log = logging.getLogger(__name__)

KEYRING_SERVICE = "trueup"

# Keys that hold secrets: refused anywhere in the file, and in nested environment variables.
SECRET_KEYS = frozenset(
    {
        "client_secret",
        "private_key",
        "secret",
        "password",
        "passwd",
        "token",
        "access_token",
        "api_key",
        "api_secret",
        "secret_key",
    }
)
# Free-form tables whose keys are names chosen by the operator, not settings.
FREE_FORM = (("console", "keymap"), ("vendor", "product_kinds"))


@dataclass(frozen=True)
class SecretSpec:
    service: str  # keyring user name and `trueup login` argument
    title: str  # how the service is named to the operator
    what: str  # what the secret is called there
    env: str  # the environment variable


SECRETS: dict[str, SecretSpec] = {
    "pax8": SecretSpec("pax8", "Pax8", "client secret", "TRUEUP_PAX8_CLIENT_SECRET"),
    **{name: SecretSpec(name, psa.display_name, psa.secret, psa.secret_env) for name, psa in PSAS.items()},
}


class ConfigError(Exception):
    """The configuration cannot be used. The message is meant for the operator as is."""


# --- sections ------------------------------------------------------------------------------------


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _required_text(value: str) -> str:
    value = value.strip()
    if not value:
        raise ValueError("must not be empty")
    return value


class Pax8Config(Section):
    client_id: str = Field(description="The Pax8 API credential's client id.")
    base_url: str = Field("https://api.pax8.com/v1", description="Pax8 partner API root.")

    _check = field_validator("client_id", "base_url")(_required_text)


class VendorConfig(Section):
    pax8: Pax8Config | None = None
    product_kinds: dict[str, ProductKind] = Field(
        default_factory=dict, description="SKU or Pax8 product id -> seat|endpoint_usage|usage_summary|quota."
    )


class ConnectWiseConfig(Section):
    site: str = Field(description="API host, e.g. api-na.myconnectwise.net.")
    company_id: str = Field(description="The company id used at login.")
    public_key: str = Field(description="The API member's public key (the private key is a secret).")
    client_id: str = Field(description="The integration's clientId (developer.connectwise.com).")
    codebase: str | None = Field(None, description="e.g. v2025_1; discovered when absent.")

    _check = field_validator("site", "company_id", "public_key", "client_id")(_required_text)


class HaloConfig(Section):
    base_url: str = Field(description="e.g. https://acme.halopsa.com")
    client_id: str
    tenant: str | None = Field(None, description="Hosted Halo: the tenant name.")

    _check = field_validator("base_url", "client_id")(_required_text)

    @field_validator("base_url")
    @classmethod
    def _url(cls, value: str) -> str:
        if urlsplit(value).scheme not in ("http", "https"):
            raise ValueError("must start with https://")
        return value


class AutotaskConfig(Section):
    username: str = Field(description="The API user's user name (an e-mail address).")
    integration_code: str = Field(description="The API tracking identifier (integration code).")
    zone_url: str | None = Field(
        None,
        description="e.g. https://webservices5.autotask.net/atservicesrest/v1.0/; discovered when absent.",
    )
    service_billing_code_id: int | None = Field(
        None,
        gt=0,
        description="The billing (allocation) code a Service that trueup creates bills through; "
        "without it trueup does not create products in Autotask (a Service requires one).",
    )

    _check = field_validator("username", "integration_code")(_required_text)


class PsaConfig(Section):
    kind: PsaName | None = None
    connectwise: ConnectWiseConfig | None = None
    halopsa: HaloConfig | None = None
    autotask: AutotaskConfig | None = None

    @model_validator(mode="after")
    def _section_for_kind(self) -> PsaConfig:
        if self.kind is not None and getattr(self, self.kind) is None:
            raise ValueError(f"kind is {self.kind!r} but there is no [psa.{self.kind}] section")
        return self

    @property
    def selected(self) -> ConnectWiseConfig | HaloConfig | AutotaskConfig | None:
        return getattr(self, self.kind) if self.kind else None


class ConsoleConfig(Section):
    refresh_interval: int = Field(300, ge=10, description="Seconds between automatic refreshes.")
    theme: str = "textual-dark"
    mouse: bool = True
    keymap: dict[str, str] = Field(default_factory=dict, description="Binding id -> keys (Textual keymap).")


class BillingConfig(Section):
    """Billing settings. Unset keys keep what the store holds (the console can change them)."""

    description_prefix: str | None = None
    threshold_prorates: bool | None = None
    prorate_counts_change_day: bool | None = None
    price_change_policy: PriceChangePolicy | None = Field(
        None, description="What a vendor price change proposes (engine.rules.leaks); unset: the store's."
    )
    timezone: str = Field("UTC", description="The partner's time zone (vendor timestamps become its dates).")

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"unknown time zone {value!r} (use an IANA name such as Europe/London)"
            ) from None
        return value

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def overrides(self) -> dict[str, Any]:
        """The keys set here, as `engine.scenario.Settings` fields."""
        return {
            name: value
            for name in (
                "description_prefix",
                "threshold_prorates",
                "prorate_counts_change_day",
                "price_change_policy",
            )
            if (value := getattr(self, name)) is not None
        }


# --- the settings object -------------------------------------------------------------------------

_FILE_DATA: ContextVar[Mapping[str, Any]] = ContextVar(
    "trueup_config_file_data", default=MappingProxyType({})
)


class _FileSource(PydanticBaseSettingsSource):
    """The already-parsed (and checked) TOML document, below the environment in priority."""

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:  # pragma: no cover
        return _FILE_DATA.get().get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return dict(_FILE_DATA.get())


class TrueupConfig(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        extra="forbid",
        case_sensitive=False,
        frozen=True,
    )

    database_url: str | None = Field(None, description="SQLAlchemy URL of the store (default: SQLite).")
    vendor: VendorConfig = Field(default_factory=VendorConfig)
    psa: PsaConfig = Field(default_factory=PsaConfig)
    console: ConsoleConfig = Field(default_factory=ConsoleConfig)
    billing: BillingConfig = Field(default_factory=BillingConfig)

    _path: Path | None = PrivateAttr(None)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return init_settings, env_settings, _FileSource(settings_cls)

    @model_validator(mode="after")
    def _both_ends(self) -> TrueupConfig:
        if self.vendor.pax8 is not None and self.psa.kind is None:
            raise ValueError("[vendor.pax8] is set but psa.kind is not (connectwise, halopsa or autotask)")
        if self.psa.kind is not None and self.vendor.pax8 is None:
            raise ValueError("psa.kind is set but [vendor.pax8] (client_id) is not")
        return self

    @property
    def path(self) -> Path | None:
        """The file this configuration was read from (None: not read from a file)."""
        return self._path

    @property
    def is_sandbox(self) -> bool:
        """Nothing configured to connect to: the console runs on the built-in sandbox."""
        return self.vendor.pax8 is None and self.psa.kind is None


# --- loading -------------------------------------------------------------------------------------


def _walk(data: Mapping[str, Any], prefix: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Any]]:
    out: list[tuple[tuple[str, ...], Any]] = []
    for key, value in data.items():
        path = (*prefix, str(key))
        out.append((path, value))
        if isinstance(value, Mapping) and path not in FREE_FORM:
            out += _walk(value, path)
    return out


def _secret_hint(path: tuple[str, ...]) -> str:
    for part in path:
        spec = SECRETS.get(part)
        if spec is not None:
            return f"set {spec.env} or run `trueup login {spec.service}`"
    names = ", ".join(spec.env for spec in SECRETS.values())
    return f"set it in the environment ({names}) or run `trueup login <service>`"


def _refuse_secrets_in_file(path: Path, data: Mapping[str, Any]) -> None:
    for key_path, _value in _walk(data):
        if key_path[-1].lower() in SECRET_KEYS:
            key = ".".join(key_path)
            raise ConfigError(
                f"{path}: {key}: secrets are not read from the config file; remove it and "
                f"{_secret_hint(key_path)}."
            )


def _refuse_nested_secret_env(environ: Mapping[str, str]) -> None:
    for name in environ:
        upper = name.upper()
        if not upper.startswith(ENV_PREFIX) or "__" not in upper:
            continue
        parts = tuple(p.lower() for p in upper[len(ENV_PREFIX) :].split("__"))
        if parts[-1] in SECRET_KEYS:
            raise ConfigError(
                f"environment variable {name}: secrets have fixed names; {_secret_hint(parts)}."
            )


def _has(data: Mapping[str, Any], loc: tuple[str, ...]) -> bool:
    node: Any = data
    for part in loc:
        if not isinstance(node, Mapping) or part not in node:
            return False
        node = node[part]
    return True


def _env_name(loc: tuple[str, ...], environ: Mapping[str, str]) -> str | None:
    """The environment variable that supplied `loc` (or one of its parents), if any."""
    upper = {k.upper(): k for k in environ}
    for n in range(len(loc), 0, -1):
        name = ENV_PREFIX + "__".join(loc[:n]).upper()
        if name in upper:
            return upper[name]
    return None


def format_validation_error(
    exc: ValidationError, path: Path, data: Mapping[str, Any], environ: Mapping[str, str]
) -> str:
    lines = []
    for error in exc.errors(include_url=False):
        loc = tuple(str(part) for part in error["loc"])
        # A model-level check reports no location of its own: its message names the keys.
        key = ".".join(loc) if loc else None
        message = str(error["msg"]).removeprefix("Value error, ")
        if error["type"] == "missing":
            message = "required but missing"
        elif error["type"] == "extra_forbidden":
            message = "unknown key"
        elif (
            "input" in error and error["type"] not in ("missing",) and not isinstance(error["input"], Mapping)
        ):
            message += f" (got {error['input']!r})"
        env_name = _env_name(loc, environ) if loc else None
        where = f"environment variable {env_name}" if env_name and not _has(data, loc) else str(path)
        lines.append(f"{where}: {key}: {message}" if key else f"{where}: {message}")
    return "\n".join(lines)


def load_config(path: Path | None = None, *, environ: Mapping[str, str] | None = None) -> TrueupConfig:
    """Read the configuration (file, then environment on top). Raises `ConfigError`.

    `environ` is for error attribution and tests; the values themselves come from `os.environ`."""
    env = os.environ if environ is None else environ
    path = path or config_path(env)
    data: dict[str, Any] = {}
    if path.is_file():
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: not valid TOML: {exc}") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{path}: cannot be read: {exc}") from None
        _refuse_secrets_in_file(path, data)
    elif path.exists():
        raise ConfigError(f"{path}: not a file")
    _refuse_nested_secret_env(env)
    token = _FILE_DATA.set(data)
    try:
        config = TrueupConfig()
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, path, data, env)) from None
    except SettingsError as exc:  # an environment variable that is not valid JSON for a table
        cause = f": {exc.__cause__}" if exc.__cause__ else ""
        raise ConfigError(f"environment: {exc}{cause}") from None
    finally:
        _FILE_DATA.reset(token)
    config._path = path if path.is_file() else None
    return config


# --- secrets -------------------------------------------------------------------------------------


def secret_spec(service: str) -> SecretSpec:
    try:
        return SECRETS[service]
    except KeyError:
        raise ConfigError(f"unknown service {service!r} (one of: {', '.join(SECRETS)})") from None


def keyring_secret(service: str) -> str | None:
    """The secret the OS keyring holds for `service`, None when there is none or no keyring."""
    import keyring
    from keyring.errors import KeyringError

    try:
        return keyring.get_password(KEYRING_SERVICE, service)
    except KeyringError as exc:
        log.debug("keyring unavailable for %s: %s", service, type(exc).__name__)
        return None
    except Exception as exc:  # a broken backend (D-Bus gone, locked store…) is "no keyring"
        log.debug("keyring failed for %s: %s", service, type(exc).__name__)
        return None


def get_secret(service: str, *, environ: Mapping[str, str] | None = None) -> SecretStr | None:
    """The service's secret: its environment variable first, then the OS keyring."""
    spec = secret_spec(service)
    env = os.environ if environ is None else environ
    value = env.get(spec.env) or keyring_secret(service)
    if not value:
        return None
    register_secret(value)  # from now on `engine.scrub.redact` replaces it in every message
    return SecretStr(value)


def register_configured_secrets(environ: Mapping[str, str] | None = None) -> None:
    """Tell the redaction every secret set in the environment (the keyring's are registered as
    `get_secret` reads them, so that a command that connects nowhere never touches the keyring)."""
    env = os.environ if environ is None else environ
    for spec in SECRETS.values():
        register_secret(env.get(spec.env))


def require_secret(service: str, *, environ: Mapping[str, str] | None = None) -> SecretStr:
    secret = get_secret(service, environ=environ)
    if secret is None:
        spec = secret_spec(service)
        raise ConfigError(
            f"{spec.title}: no {spec.what}; set {spec.env} or run `trueup login {spec.service}`."
        )
    return secret


def store_secret(service: str, value: str) -> None:
    """Put the secret in the OS keyring. Raises keyring's `NoKeyringError` when there is no backend."""
    import keyring

    secret_spec(service)
    keyring.set_password(KEYRING_SERVICE, service, value)
