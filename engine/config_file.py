"""Where the configuration file is, and the environment's prefix: standard library and
platformdirs only, so that a launch can tell (before its first paint, without pydantic) whether
the configuration it resolved last time is still the one in force (`tui.launch`). The
configuration itself is read by `engine.settings`."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

APP = "trueup"
CONFIG_ENV = "TRUEUP_CONFIG"
FILE_NAME = "trueup.toml"
ENV_PREFIX = "TRUEUP_"


def config_path(environ: Mapping[str, str] | None = None) -> Path:
    """`$TRUEUP_CONFIG`, else `user_config_dir("trueup")/trueup.toml`."""
    from platformdirs import user_config_dir

    env = os.environ if environ is None else environ
    explicit = env.get(CONFIG_ENV)
    if explicit:
        return Path(explicit).expanduser()
    return Path(user_config_dir(APP, appauthor=False)) / FILE_NAME
