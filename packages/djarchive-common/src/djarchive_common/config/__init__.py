"""Configuration per role, in two rooms:

- :mod:`.sources`: where values come from below explicit arguments: the environment and
  DataJoint's configuration (0.13/0.14's ``custom`` section and files, 2.x's named stores);
- :mod:`.settings`: the resolved :class:`Settings` of a role (precedence, defaults, checks,
  reprs without secrets), the signature settings (trusted keys, the signing key) and the
  mirrors.

Callers import from here; the rooms import each other.
"""

from .settings import (
    DEFAULT_BUCKET,
    DEFAULT_ENDPOINT,
    ROLES,
    Settings,
    resolve_mirrors,
    resolve_settings,
    resolve_sign_key,
    resolve_single_writer,
    resolve_trust,
)
from .sources import DataJointConfig, datajoint_config, datajoint_loglevel, datajoint_setting

__all__ = [
    "DEFAULT_BUCKET",
    "DEFAULT_ENDPOINT",
    "ROLES",
    "DataJointConfig",
    "Settings",
    "datajoint_config",
    "datajoint_loglevel",
    "datajoint_setting",
    "resolve_mirrors",
    "resolve_settings",
    "resolve_sign_key",
    "resolve_single_writer",
    "resolve_trust",
]
