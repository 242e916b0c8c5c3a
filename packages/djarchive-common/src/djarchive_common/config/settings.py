"""Where the archive is and who we are: the settings of a role, resolved and checked.

Highest precedence first:

1. explicit arguments (Python keywords, CLI flags);
2. the environment: ``DJARCHIVE_<ROLE>_ENDPOINT``, ``_BUCKET``, ``_ACCESS_KEY``
   (alias ``_ACCESSKEY``), ``_SECRET_KEY`` (alias ``_SECRETKEY``), ``_SECURE``;
3. DataJoint: datajoint 2.x's named store ``stores.djarchive_<role>``, then the seed's
   ``custom`` keys (:mod:`.sources` says where each major keeps them);
4. defaults: the public DataJoint archive, https, anonymous.

Signatures (see :mod:`djarchive_common.signing`) are configured the same way:
:func:`resolve_trust` (the keys a client trusts, and revoked ones) and
:func:`resolve_sign_key` (the curator's private key); so are mirrors (:func:`resolve_mirrors`).
DataJoint is consulted only when arguments and environment leave something open. Secrets never
appear in a repr or a message.

Messages name where a setting came from: an environment variable, DataJoint's key, or the
argument, which the library calls by its keyword (``bucket=``) and a command line by its flag
(``--bucket``): a command line passes its flags as ``argument_names``.
"""

from __future__ import annotations

import ipaddress
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from ..errors import ConfigurationError, Hint, MissingCredentialsError
from ..layout import bucket_problem, check_mirror_url
from .sources import (
    FIELDS,
    datajoint_configured,
    datajoint_role_value,
    datajoint_values,
    environment_values,
    parse_bool,
)

if TYPE_CHECKING:
    from collections.abc import Iterable

    from ..signing import PublicKey, Trust

__all__ = [
    "DEFAULT_BUCKET",
    "DEFAULT_ENDPOINT",
    "ROLES",
    "Settings",
    "argument_source",
    "resolve_mirrors",
    "resolve_settings",
    "resolve_sign_key",
    "resolve_single_writer",
    "resolve_trust",
]

ROLES = ("client", "admin")
DEFAULT_ENDPOINT = "s3.djhub.io"
DEFAULT_BUCKET = "djhub.vathes.datapub.elements"
_ARGUMENT, _ENVIRONMENT, _DATAJOINT, _DEFAULT = range(4)

log = logging.getLogger("djarchive_common")
Names = Mapping[str, str]


def argument_source(keyword: str, names: Names | None = None, value: str = "") -> str:
    """How messages name the argument ``keyword``: its flag in ``names`` (a command line's),
    else the keyword, with ``value`` when given (``bucket=``, ``require_signature=True``)."""
    return (names or {}).get(keyword) or f"{keyword}={value}"


@dataclass(frozen=True)
class Settings:
    """A resolved archive location and identity. Secrets never appear in its repr."""

    role: str
    endpoint: str
    bucket: str
    secure: bool = True
    access_key: str | None = field(default=None, repr=False)
    secret_key: str | None = field(default=None, repr=False)
    sources: Mapping[str, str] = field(default_factory=dict, repr=False, compare=False)

    def __repr__(self) -> str:
        who = "anonymous" if self.anonymous else "credentials=<redacted>"
        return (
            f"Settings(role={self.role!r}, endpoint={self.endpoint!r}, bucket={self.bucket!r}, "
            f"secure={self.secure!r}, {who})"
        )

    @property
    def anonymous(self) -> bool:
        """True when no credentials are configured."""
        return not self.access_key

    @property
    def url(self) -> str:
        """The bucket's address, for messages."""
        return f"{'https' if self.secure else 'http'}://{self.endpoint}/{self.bucket}"

    @property
    def secrets(self) -> tuple[str, ...]:
        """The values that must never be printed."""
        return tuple(value for value in (self.access_key, self.secret_key) if value)

    def require_credentials(self) -> None:
        """Raise MissingCredentialsError unless credentials are configured."""
        if self.anonymous:
            prefix = f"DJARCHIVE_{self.role.upper()}_"
            raise MissingCredentialsError(
                f"{self.role} credentials are not configured: set {prefix}ACCESS_KEY and "
                f"{prefix}SECRET_KEY, or djarchive.{self.role}.access_key/secret_key in DataJoint's "
                f"configuration (see the README, 'Configuration')"
            )


def resolve_settings(
    role: str = "client",
    *,
    endpoint: str | None = None,
    bucket: str | None = None,
    access_key: str | None = None,
    secret_key: str | None = None,
    secure: bool | None = None,
    environ: Mapping[str, str] | None = None,
    argument_names: Names | None = None,
) -> Settings:
    """Resolve the settings of ``role`` from arguments, environment, DataJoint and defaults;
    ``argument_names``: how messages name the arguments (see the module's docstring)."""
    if role not in ROLES:
        raise ConfigurationError(f"unknown role {role!r}: expected one of {', '.join(ROLES)}")
    env = os.environ if environ is None else environ
    found: dict[str, tuple[Any, int, str]] = {}
    explicit = {"endpoint": endpoint, "bucket": bucket, "access_key": access_key, "secret_key": secret_key}
    for name, value in explicit.items():
        if value not in (None, ""):
            found[name] = (value, _ARGUMENT, argument_source(name, argument_names))
    secure_choices: list[tuple[bool, int, str]] = []
    if secure is not None:
        secure_choices.append((bool(secure), _ARGUMENT, argument_source("secure", argument_names)))
    for name, (text, variable) in environment_values(role, env).items():
        if name == "secure":
            secure_choices.append((parse_bool(text, variable), _ENVIRONMENT, variable))
        elif name not in found:
            found[name] = (text, _ENVIRONMENT, variable)

    if any(name not in found for name in FIELDS) and datajoint_configured(env):
        endpoint_open = "endpoint" not in found  # DataJoint's 'secure' belongs to DataJoint's endpoint
        for name, (value, source) in datajoint_values(role, env).items():
            if name == "secure":
                if endpoint_open:
                    secure_choices.append((parse_bool(value, source), _DATAJOINT, source))
            elif name not in found and value not in (None, ""):
                found[name] = (value, _DATAJOINT, source)

    found.setdefault("endpoint", (DEFAULT_ENDPOINT, _DEFAULT, "default"))
    found.setdefault("bucket", (DEFAULT_BUCKET, _DEFAULT, "default"))
    raw_endpoint, endpoint_rank, endpoint_source = found["endpoint"]
    host, scheme_secure = _parse_endpoint(str(raw_endpoint), endpoint_source)
    if scheme_secure is not None:
        secure_choices.append((scheme_secure, endpoint_rank, f"{endpoint_source} (URL scheme)"))
    secure_choices.append((True, _DEFAULT, "default"))
    resolved_secure, _, secure_source = min(secure_choices, key=lambda choice: choice[1])

    access, secret = found.get("access_key"), found.get("secret_key")
    if bool(access) != bool(secret):
        present, absent = ("access key", "secret key") if access else ("secret key", "access key")
        source = (access or secret)[2]  # type: ignore[index]
        raise ConfigurationError(f"{role} {present} is configured ({source}) but the {absent} is not")
    bucket_value = str(found["bucket"][0]).strip()
    problem = bucket_problem(bucket_value)
    if problem is not None:
        raise ConfigurationError(f"invalid bucket name {bucket_value!r} ({found['bucket'][2]}): {problem}")

    sources = {name: value[2] for name, value in found.items()}
    sources["secure"] = secure_source
    settings = Settings(
        role=role,
        endpoint=host,
        bucket=bucket_value,
        secure=resolved_secure,
        access_key=str(access[0]) if access else None,
        secret_key=str(secret[0]) if secret else None,
        sources=sources,
    )
    log.debug("resolved %r from %s", settings, sources)
    return settings


def _parse_endpoint(value: str, source: str) -> tuple[str, bool | None]:
    """Split ``host[:port]`` or ``http(s)://host[:port]`` into (host[:port], secure or None)."""
    value = value.strip()
    scheme_secure = None
    if "@" in value:  # checked first, so that a pasted secret is never echoed
        raise ConfigurationError(f"invalid endpoint ({source}): credentials do not belong in the URL")
    if "://" in value:
        shown = value.split("?", 1)[0]
        try:
            parts = urlsplit(value)
            parts.port  # noqa: B018 - validates the port
        except ValueError:
            raise ConfigurationError(
                f"invalid endpoint {shown!r} ({source}): expected host[:port] or http(s)://host[:port]"
            ) from None
        if parts.scheme not in ("http", "https") or parts.path not in ("", "/") or parts.query:
            raise ConfigurationError(
                f"invalid endpoint {shown!r} ({source}): expected host[:port] or http(s)://host[:port]"
            )
        scheme_secure = parts.scheme == "https"
        value = parts.netloc
    if not _valid_host_port(value):
        raise ConfigurationError(f"invalid endpoint {value!r} ({source}): expected host[:port]")
    return value, scheme_secure


def _valid_host_port(value: str) -> bool:
    """Whether ``value`` is ``host``, ``host:port``, ``[ipv6]`` or ``[ipv6]:port``."""
    if value.startswith("["):
        address, _, rest = value[1:].partition("]")
        try:
            ipaddress.IPv6Address(address)
        except ValueError:
            return False
        host, port = address, rest[1:] if rest.startswith(":") else rest
        if rest and not rest.startswith(":"):
            return False
    else:
        host, _, port = value.partition(":")
        if ":" in port:
            return False
    if not host or any(char in host for char in "/ \\?#[]"):
        return False
    return not port or (port.isdigit() and 0 < int(port) < 65536)


# -- signatures ------------------------------------------------------------------------------


def _key_values(value: Any) -> list[str]:
    """A configured key list: one string (items separated by ',', ';' or newlines) or a list."""
    if isinstance(value, (list, tuple)):
        return [str(item) for item in value]
    return [str(value)]


def _trusted(value: Any, source: str, is_file: bool) -> list[PublicKey]:
    """The public keys a configured value names; a value that names none is an error (a trust
    configuration that trusts nothing would silently disable verification)."""
    from ..signing import parse_key_items, read_key_file

    keys = read_key_file(str(value), source) if is_file else parse_key_items(_key_values(value), source)[0]
    if not keys:
        raise ConfigurationError(f"{source} names no public key ('djarchive-ed25519 <base64>' lines)")
    return keys


def resolve_trust(
    role: str = "client",
    *,
    trusted_keys: str | Iterable[str] | None = None,
    revoked_keys: str | Iterable[str] | None = None,
    require_signature: bool = False,
    environ: Mapping[str, str] | None = None,
    argument_names: Names | None = None,
) -> Trust:
    """The public keys ``role`` trusts to sign revisions, and the revoked ones.

    Trusted keys come from the first level that names any: arguments (``--trust``,
    ``trusted_keys=``: key lines or key files); the environment, ``DJARCHIVE_<ROLE>_TRUSTED_KEYS``
    (key lines or files, separated by ',', ';' or newlines) and ``DJARCHIVE_<ROLE>_TRUSTED_KEYS_FILE``;
    DataJoint's ``djarchive.<role>.trusted_keys`` / ``trusted_keys_file`` (or ``trusted_keys`` /
    ``trusted_keys_file`` of the store ``djarchive_<role>`` in datajoint.json). Revoked keys (key
    lines, key ids or files) add up from every level: ``--revoke``/``revoked_keys=``,
    ``DJARCHIVE_<ROLE>_REVOKED_KEYS``, DataJoint's ``revoked_keys``; no level can trust a key
    another revokes. ``require_signature`` without any trusted key is a ConfigurationError.
    ``argument_names``: how messages name the arguments (see the module's docstring).
    """
    from ..signing import Trust, parse_key_items

    env = os.environ if environ is None else environ
    prefix = f"DJARCHIVE_{role.upper()}_"
    # Each level: (value, source, whether the value is one file's path).
    levels: list[list[tuple[Any, str, bool]]] = [
        [(trusted_keys, argument_source("trusted_keys", argument_names), False)],
        [
            (env.get(f"{prefix}TRUSTED_KEYS"), f"{prefix}TRUSTED_KEYS", False),
            (env.get(f"{prefix}TRUSTED_KEYS_FILE"), f"{prefix}TRUSTED_KEYS_FILE", True),
        ],
    ]
    keys: list[PublicKey] = []
    sources: list[str] = []
    for level in levels:
        for value, source, is_file in level:
            if value:
                keys.extend(_trusted(value, source, is_file))
                sources.append(source)
        if sources:
            break
    else:  # neither arguments nor environment: DataJoint's configuration
        for name in ("trusted_keys", "trusted_keys_file"):
            setting = datajoint_role_value(role, name, env)
            if setting is not None:
                value, source = setting
                keys.extend(_trusted(value, source, name.endswith("_file")))
                sources.append(source)
    revoked: set[str] = set()
    if keys:  # revocations matter only where keys are trusted
        revocations: list[tuple[Any, str]] = []
        if revoked_keys:
            revocations.append((revoked_keys, argument_source("revoked_keys", argument_names)))
        if env.get(f"{prefix}REVOKED_KEYS"):
            revocations.append((env[f"{prefix}REVOKED_KEYS"], f"{prefix}REVOKED_KEYS"))
        found = datajoint_role_value(role, "revoked_keys", env)
        if found is not None:
            revocations.append(found)
        for value, source in revocations:
            revoked_found, ids = parse_key_items(_key_values(value), source, ids=True)
            revoked |= ids | {key.key_id for key in revoked_found}
    trust = Trust(tuple(dict.fromkeys(keys)), frozenset(revoked), tuple(sources))
    if require_signature and not trust.enforced:
        required = argument_source("require_signature", argument_names, "True")
        raise ConfigurationError(
            f"a signature is required ({required}) but no trusted key is configured",
            hint=Hint(
                "trusted_keys",
                flag="--trust",
                metavar="KEY",
                text=f": give {{}} (a 'djarchive-ed25519 ...' line or a .pub file), or set "
                f"{prefix}TRUSTED_KEYS, {prefix}TRUSTED_KEYS_FILE or djarchive.{role}.trusted_keys in "
                "DataJoint's configuration",
            ),
        )
    log.debug("trusted keys: %s; revoked: %s", [key.key_id for key in trust.keys], sorted(revoked))
    return trust


def resolve_sign_key(
    role: str = "admin",
    sign_key: str | os.PathLike[str] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    argument_names: Names | None = None,
) -> tuple[str, str] | None:
    """The private key file to sign with, and where it was configured: the argument
    (``--sign-key``), ``DJARCHIVE_<ROLE>_SIGN_KEY``, DataJoint's ``djarchive.<role>.sign_key`` (or
    ``sign_key`` of the store ``djarchive_<role>``); None when none is configured."""
    if sign_key not in (None, ""):
        return os.fspath(sign_key), argument_source("sign_key", argument_names)
    env = os.environ if environ is None else environ
    variable = f"DJARCHIVE_{role.upper()}_SIGN_KEY"
    if env.get(variable):
        return env[variable], variable
    found = datajoint_role_value(role, "sign_key", env)
    if found is not None:
        return str(found[0]), found[1]
    return None


def resolve_single_writer(
    role: str = "admin",
    single_writer: bool | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    argument_names: Names | None = None,
) -> tuple[bool, str]:
    """Whether the curator declared they are the only writer, and where: the argument
    (``--single-writer``), ``DJARCHIVE_<ROLE>_SINGLE_WRITER``, DataJoint's
    ``djarchive.<role>.single_writer`` (or ``single_writer`` of the store ``djarchive_<role>``)."""
    if single_writer:
        return True, argument_source("single_writer", argument_names)
    env = os.environ if environ is None else environ
    variable = f"DJARCHIVE_{role.upper()}_SINGLE_WRITER"
    if env.get(variable):
        return parse_bool(env[variable], variable), variable
    found = datajoint_role_value(role, "single_writer", env)
    if found is not None:
        return parse_bool(found[0], found[1]), found[1]
    return False, "default"


# -- mirrors ---------------------------------------------------------------------------------


def resolve_mirrors(
    role: str = "client",
    mirrors: str | Iterable[str] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    argument_names: Names | None = None,
) -> tuple[str, ...]:
    """The base URLs of the mirrors ``role`` may read the archive's data from, checked
    (:func:`djarchive_common.layout.check_mirror_url`: ``http(s)://HOST[:PORT]/PATH/``).

    From the first level that names any: arguments (``--mirror``, ``mirrors=``: URLs, or one
    string of them); ``DJARCHIVE_<ROLE>_MIRRORS`` (URLs separated by spaces or commas);
    DataJoint's ``djarchive.<role>.mirrors`` (``custom`` in 0.14) or ``mirrors`` of the store
    ``djarchive_<role>`` (``datajoint.json``, 2.x), a list or such a string.
    ``argument_names``: how messages name the argument (see the module's docstring).
    """
    env = os.environ if environ is None else environ
    variable = f"DJARCHIVE_{role.upper()}_MIRRORS"
    found: tuple[Any, str] | None = None
    if mirrors:
        found = (mirrors, argument_source("mirrors", argument_names))
    elif env.get(variable, "").strip():
        found = (env[variable], variable)
    else:
        found = datajoint_role_value(role, "mirrors", env)
    if found is None:
        return ()
    value, source = found
    items = value.replace(",", " ").split() if isinstance(value, str) else [str(item) for item in value]
    urls = tuple(dict.fromkeys(check_mirror_url(item, source) for item in items))
    log.debug("mirrors: %s (%s)", urls, source)
    return urls
