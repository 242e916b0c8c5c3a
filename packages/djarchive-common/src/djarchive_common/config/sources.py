"""Where settings come from, below explicit arguments: the environment and DataJoint's
configuration, each value with the name of its source (for messages, never for secrets).

DataJoint's configuration is read as each major writes it:

- datajoint 2.x's named store ``stores.djarchive_<role>`` (``datajoint.json``, ``DJ_STORES``,
  its secrets folder), through ``datajoint.config``;
- the seed's ``custom`` keys ``djarchive.<role>.<field>``, then the role-less
  ``djarchive.<field>``: under datajoint 0.13/0.14 from ``dj.config['custom']``; under
  datajoint 2.x (which no longer reads them) or without datajoint, read by djarchive itself
  from the file datajoint 0.x would read, ``dj_local_conf.json`` in the working directory,
  else ``~/.datajoint_config.json``.

datajoint is imported only when a configuration it reads could exist (its files, a ``DJ_*``
variable, or datajoint already imported), because importing it costs most of a second. Files
djarchive reads itself must be regular files: a named pipe, device or folder is refused in one
line, without waiting on it.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from ..errors import ConfigurationError
from ..localfs import read_file

__all__ = [
    "DataJointConfig",
    "datajoint_config",
    "datajoint_loglevel",
    "datajoint_setting",
]

FIELDS = ("endpoint", "bucket", "access_key", "secret_key")
_ENV_ALIASES = {"access_key": ("ACCESS_KEY", "ACCESSKEY"), "secret_key": ("SECRET_KEY", "SECRETKEY")}
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}
LOCAL_CONFIG = "dj_local_conf.json"  # the seed's configuration files, as datajoint 0.x reads them
GLOBAL_CONFIG = ".datajoint_config.json"
MAX_CONFIG_BYTES = 16 * 1024 * 1024  # of a configuration file djarchive reads itself

log = logging.getLogger("djarchive_common")


def parse_bool(value: object, source: str) -> bool:
    """A configured boolean: true/false, yes/no, on/off, 1/0 (any case), or a JSON boolean."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ConfigurationError(f"invalid boolean {value!r} in {source}: use true or false")


def environment_values(role: str, env: Mapping[str, str]) -> dict[str, tuple[str, str]]:
    """Settings for ``role`` from the environment, ``DJARCHIVE_<ROLE>_<FIELD>`` (and the aliases
    ``_ACCESSKEY``, ``_SECRETKEY``; the first set wins): {field: (value, variable)}, ``secure``
    unparsed."""
    values: dict[str, tuple[str, str]] = {}
    for name in (*FIELDS, "secure"):
        for suffix in _ENV_ALIASES.get(name, (name.upper(),)):
            variable = f"DJARCHIVE_{role.upper()}_{suffix}"
            if name not in values and env.get(variable):
                values[name] = (env[variable], variable)
    return values


def _legacy_config_file(env: Mapping[str, str]) -> Path | None:
    """The configuration file datajoint 0.x reads: ``dj_local_conf.json`` in the working
    directory, else ``~/.datajoint_config.json`` (only the first that exists, as datajoint does;
    one that is no regular file is refused)."""
    home = Path(env.get("HOME") or Path.home())
    for path in (Path(LOCAL_CONFIG), home / GLOBAL_CONFIG):
        if path.is_file():
            return path
        if path.exists():
            raise ConfigurationError(f"cannot read {path}: not a regular file")
    return None


def _datajoint2_configured(env: Mapping[str, str]) -> bool:
    """Whether a configuration datajoint 2.x reads could exist: a ``DJ_*`` variable, its secrets
    folder, or ``datajoint.json`` in the working directory or above it (up to a repository root)."""
    if any(name.startswith("DJ_") for name in env):
        return True
    if Path("/run/secrets/datajoint").is_dir():
        return True
    directory = Path.cwd().resolve()
    while True:
        if (directory / "datajoint.json").is_file():
            return True
        if (directory / ".git").exists() or (directory / ".hg").exists() or directory == directory.parent:
            return False
        directory = directory.parent


def datajoint_configured(env: Mapping[str, str]) -> bool:
    """Whether a DataJoint configuration could hold djarchive settings (no import needed)."""
    return "datajoint" in sys.modules or _legacy_config_file(env) is not None or _datajoint2_configured(env)


def _datajoint_major() -> int | None:
    """The major version of the installed datajoint, without importing it; None when it is absent."""
    module = sys.modules.get("datajoint")
    version = getattr(module, "__version__", None) if module is not None else None
    if version is None:
        from importlib import metadata

        try:
            version = metadata.version("datajoint")
        except metadata.PackageNotFoundError:
            return None
    head = str(version).split(".", 1)[0]
    return int(head) if head.isdigit() else None


def _import_datajoint() -> ModuleType | None:
    """Import datajoint quietly: its import-time warnings and INFO lines are not ours to print."""
    module = sys.modules.get("datajoint")
    if module is not None:
        return module
    previous = logging.root.manager.disable
    logging.disable(logging.INFO)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import datajoint
    except ImportError:
        log.debug("datajoint is not installed; its configuration is not read")
        return None
    except Exception as exc:  # datajoint validates its files at import
        raise ConfigurationError(f"DataJoint's configuration could not be loaded: {exc}") from exc
    finally:
        logging.disable(previous)
    return datajoint


def _config_get(config: Any, key: str) -> Any:
    try:
        return config.get(key)
    except Exception:  # datajoint 2.x raises on unknown keys in some versions
        return None


def _read_json(path: Path) -> dict[str, Any]:
    """A configuration file's JSON object; a ConfigurationError naming the file if it is unreadable."""
    try:
        data = json.loads(read_file(path, MAX_CONFIG_BYTES)[0].decode("utf-8"))
    except OSError as exc:
        raise ConfigurationError(f"cannot read {path}: {exc.strerror}") from None
    except ValueError as exc:
        raise ConfigurationError(f"{path} is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigurationError(f"{path} does not hold a JSON object")
    return data


@dataclass(frozen=True)
class DataJointConfig:
    """What djarchive reads of DataJoint's configuration.

    ``config`` is ``datajoint.config`` when datajoint is consulted, else None. ``custom`` is
    the seed's ``custom`` section: under datajoint 0.x, ``dj.config['custom']`` (datajoint
    read it from ``dj_local_conf.json`` or ``~/.datajoint_config.json``, and callers may
    change it at run time); under datajoint 2.x, which reads neither file, or without
    datajoint, djarchive reads the same file itself (JSON, no datajoint import needed).
    ``custom_source`` names where ``custom`` came from, for messages.
    """

    major: int | None = None
    config: Any = None
    custom: Mapping[str, Any] = field(default_factory=dict)
    custom_source: str = "datajoint config"


def datajoint_config(environ: Mapping[str, str] | None = None) -> DataJointConfig:
    """DataJoint's configuration as djarchive reads it; datajoint is imported only when its
    own configuration could hold something (see :class:`DataJointConfig`)."""
    env = os.environ if environ is None else environ
    legacy = _legacy_config_file(env)
    major = _datajoint_major()
    config = None
    if "datajoint" in sys.modules or (legacy is not None if major == 0 else _datajoint2_configured(env)):
        datajoint = _import_datajoint() if major is not None else None
        config = datajoint.config if datajoint is not None else None
    if major == 0:
        custom = _config_get(config, "custom") if config is not None else None
        return DataJointConfig(major, config, custom if isinstance(custom, Mapping) else {})
    if legacy is None:
        return DataJointConfig(major, config)
    custom = _read_json(legacy).get("custom")
    if not isinstance(custom, Mapping):
        return DataJointConfig(major, config, {}, str(legacy))
    log.debug("reading the custom section of %s (datajoint %s does not read it)", legacy, major or "-")
    return DataJointConfig(major, config, custom, str(legacy))


def datajoint_values(role: str, env: Mapping[str, str]) -> dict[str, tuple[Any, str]]:
    """Settings for ``role`` from DataJoint: its named store ``stores.djarchive_<role>`` first,
    then the ``custom`` keys ``djarchive.<role>.<field>``, then the role-less ``djarchive.<field>``."""
    dj = datajoint_config(env)
    stores = _config_get(dj.config, "stores") if dj.config is not None else None
    store = stores.get(f"djarchive_{role}") if isinstance(stores, Mapping) else None
    values: dict[str, tuple[Any, str]] = {}
    for name in (*FIELDS, "secure"):
        candidates = []
        if isinstance(store, Mapping):
            candidates.append((store.get(name), f"datajoint config stores.djarchive_{role}.{name}"))
        for key in (f"djarchive.{role}.{name}", f"djarchive.{name}"):
            candidates.append((dj.custom.get(key), f"{dj.custom_source} custom['{key}']"))
        for value, source in candidates:
            if value not in (None, ""):
                values[name] = (value, source)
                break
    return values


def datajoint_setting(*keys: str, environ: Mapping[str, str] | None = None) -> Any:
    """The first of ``keys`` set in DataJoint's configuration ('custom.x' reads the custom section,
    under either datajoint major)."""
    env = os.environ if environ is None else environ
    if not datajoint_configured(env):
        return None
    dj = datajoint_config(env)
    for key in keys:
        if key.startswith("custom."):
            value = dj.custom.get(key[len("custom.") :])
        else:
            value = _config_get(dj.config, key) if dj.config is not None else None
        if value not in (None, ""):
            return value
    return None


def datajoint_loglevel(environ: Mapping[str, str] | None = None) -> str | None:
    """DataJoint's ``loglevel`` when the user set it, else None: its default (INFO) is not a choice.

    Set means: the ``DJ_LOG_LEVEL`` variable (both majors); under datajoint 0.x, ``loglevel`` in
    the configuration file it read (or changed at run time); under datajoint 2.x, ``loglevel``
    in ``datajoint.json`` or set on ``dj.config`` (pydantic's set fields).
    """
    env = os.environ if environ is None else environ
    if env.get("DJ_LOG_LEVEL"):
        return env["DJ_LOG_LEVEL"]
    if not datajoint_configured(env):
        return None
    dj = datajoint_config(env)
    if dj.config is None:
        return None
    value = _config_get(dj.config, "loglevel")
    if not value:
        return None
    if dj.major == 0:
        legacy = _legacy_config_file(env)
        in_file = legacy is not None and "loglevel" in _read_json(legacy)
        return str(value) if in_file or str(value).upper() != "INFO" else None
    fields_set = getattr(dj.config, "model_fields_set", None)
    if fields_set is None:  # a datajoint without pydantic settings: only a change from the default counts
        return str(value) if str(value).upper() != "INFO" else None
    return str(value) if "loglevel" in fields_set else None


def datajoint_role_value(role: str, name: str, env: Mapping[str, str]) -> tuple[Any, str] | None:
    """``<name>`` of the named store ``djarchive_<role>`` (datajoint 2.x), else the ``custom`` key
    ``djarchive.<role>.<name>`` (as :func:`datajoint_config` reads it): (value, source), or None."""
    if not datajoint_configured(env):
        return None
    dj = datajoint_config(env)
    stores = _config_get(dj.config, "stores") if dj.config is not None else None
    store = stores.get(f"djarchive_{role}") if isinstance(stores, Mapping) else None
    if isinstance(store, Mapping) and store.get(name) not in (None, "", [], ()):
        return store[name], f"datajoint config stores.djarchive_{role}.{name}"
    key = f"djarchive.{role}.{name}"
    if dj.custom.get(key) not in (None, "", [], ()):
        return dj.custom[key], f"{dj.custom_source} custom['{key}']"
    return None
