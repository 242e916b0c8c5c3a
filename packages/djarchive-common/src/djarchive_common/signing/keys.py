"""Ed25519 keys: public keys and the key lines and files that name them, private keys (a
curator's, which others must not read), and making a key pair.

Public keys are written as one line, ``djarchive-ed25519 <base64 of the raw 32-byte key>``
(anything after it on the line is a comment); a key file holds such lines and '#' comments.
Private keys are PKCS#8 PEM files. Key files are read only when they are regular files: a named
pipe, device or folder is refused without waiting on it.

The cryptography is pycryptodome's (a dependency of minio, so already installed), imported
only when a key is generated, loaded or a signature checked: reading key lines, parsing
signatures files and reporting without trusted keys need none of it.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import stat
import time
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ConfigurationError, LocalPathError
from ..localfs import read_file
from .statements import KEY_ID_RE, Signed, Statement, Value, sha256_hex

if TYPE_CHECKING:
    from Crypto.PublicKey.ECC import EccKey

__all__ = [
    "KEY_TYPE",
    "MAX_KEY_FILE_BYTES",
    "PublicKey",
    "SigningKey",
    "generate_key",
    "parse_key_items",
    "parse_public_key",
    "read_key_file",
]

KEY_TYPE = "djarchive-ed25519"
MAX_KEY_FILE_BYTES = 64 * 1024
_SEPARATORS = re.compile(r"[,;\n]")
_BASE64_BLOB = re.compile(r"[A-Za-z0-9+=]{24,}")  # key material; paths break at slashes
# An Ed25519 SubjectPublicKeyInfo is this prefix and the 32 raw bytes.
_SPKI_PREFIX = bytes.fromhex("302a300506032b6570032100")


def _crypto() -> tuple[Any, Any]:
    """pycryptodome's ECC and eddsa modules (about 0.1 s to import: only when needed)."""
    try:
        from Crypto.PublicKey import ECC
        from Crypto.Signature import eddsa
    except ImportError as exc:
        raise ConfigurationError(
            f"signatures need pycryptodome 3.15 or newer (installed with minio): {exc}; "
            "pip install 'pycryptodome>=3.15'"
        ) from None
    return ECC, eddsa


def _shown(item: str) -> str:
    """``item`` quoted for a message, unless it could be key material (never echoed)."""
    if "PRIVATE KEY" in item or len(item) > 200 or _BASE64_BLOB.search(item):
        return "(value not shown)"
    return repr(item)


# -- public keys ---------------------------------------------------------------------------


class PublicKey(Value):
    """An Ed25519 public key: its raw 32 bytes, its one-line form and its key id."""

    __slots__ = ("raw",)
    raw: bytes

    def __init__(self, raw: bytes):
        if len(raw) != 32:
            raise ValueError("an Ed25519 public key has 32 bytes")
        super().__init__(raw=bytes(raw))

    @property
    def key_id(self) -> str:
        """The first 8 bytes of the sha256 of the raw key, in hex (16 digits)."""
        return sha256_hex(self.raw)[:16]

    @property
    def line(self) -> str:
        """``djarchive-ed25519 <base64>``: the form to paste into configuration."""
        return f"{KEY_TYPE} {base64.b64encode(self.raw).decode('ascii')}"

    def __str__(self) -> str:
        return self.line

    def __repr__(self) -> str:
        return f"PublicKey(key_id={self.key_id!r})"

    def verify(self, message: bytes, signature: bytes) -> bool:
        """Whether ``signature`` is this key's Ed25519 signature of ``message``."""
        _, eddsa = _crypto()
        try:
            key = eddsa.import_public_key(self.raw)
        except ValueError:
            raise ConfigurationError(f"trusted key {self.key_id} is not a valid Ed25519 public key") from None
        try:
            eddsa.new(key, "rfc8032").verify(message, signature)
        except ValueError:
            return False
        return True


def parse_public_key(text: str, source: str = "public key") -> PublicKey:
    """A key line, ``djarchive-ed25519 <base64>`` (words after it are a comment)."""
    words = text.split()
    if len(words) < 2 or words[0] != KEY_TYPE:
        raise ConfigurationError(
            f"invalid public key in {source}: expected '{KEY_TYPE} <base64>' "
            "(the line djarchive-admin keygen prints, also in KEYFILE.pub)"
        )
    try:
        raw = base64.b64decode(words[1], validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != 32:
        raise ConfigurationError(f"invalid public key in {source}: not the base64 of 32 bytes")
    return PublicKey(raw)


def _is_key_line(item: str) -> bool:
    return item.split(maxsplit=1)[0] == KEY_TYPE if item.strip() else False


def _read_key_file(path: Path, source: str, ids: bool) -> tuple[list[PublicKey], set[str]]:
    """Public keys (and, with ``ids``, key ids) from a file: one per line, '#' comments."""
    try:
        data, _ = read_file(path, MAX_KEY_FILE_BYTES)
    except OSError as exc:
        raise ConfigurationError(f"cannot read key file {str(path)!r} ({source}): {exc.strerror}") from None
    text = data.decode("utf-8", errors="replace")
    if "PRIVATE KEY" in text:
        raise ConfigurationError(
            f"{str(path)!r} ({source}) holds a private key: trust its public key ({path.name}.pub) instead"
        )
    keys: list[PublicKey] = []
    found_ids: set[str] = set()
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        where = f"{path}, line {number} ({source})"
        if ids and KEY_ID_RE.fullmatch(line.lower()):
            found_ids.add(line.lower())
        else:
            keys.append(parse_public_key(line, where))
    return keys, found_ids


def read_key_file(path: str | os.PathLike[str], source: str) -> list[PublicKey]:
    """The public keys of a key file: one ``djarchive-ed25519 <base64>`` line each, '#' comments."""
    return _read_key_file(Path(path).expanduser(), source, ids=False)[0]


def parse_key_items(
    items: str | Iterable[str], source: str, *, ids: bool = False
) -> tuple[list[PublicKey], set[str]]:
    """Public keys from configuration values: key lines, paths of key files, and (``ids``) key ids.

    A string holds several items separated by ',', ';' or newlines; a sequence holds items
    (each may hold several). Returns (keys, key ids).
    """
    if isinstance(items, str):
        items = [items]
    keys: list[PublicKey] = []
    found_ids: set[str] = set()
    number = 0
    for value in items:
        value = str(value)
        if "PRIVATE KEY" in value:
            raise ConfigurationError(f"{source} holds a private key: configure public keys only")
        for item in _SEPARATORS.split(value):
            item = item.strip()
            if not item or item.startswith("#"):
                continue
            number += 1
            if _is_key_line(item):
                keys.append(parse_public_key(item, source if number == 1 else f"{source}, item {number}"))
            elif ids and KEY_ID_RE.fullmatch(item.lower()):
                found_ids.add(item.lower())
            else:
                path = Path(item).expanduser()
                if not path.is_file():
                    expected = f"'{KEY_TYPE} <base64>' public key line" + (", key id" if ids else "")
                    raise ConfigurationError(
                        f"invalid key in {source}: {_shown(item)} is neither a {expected} nor a key file"
                    )
                file_keys, file_ids = _read_key_file(path, source, ids)
                keys.extend(file_keys)
                found_ids |= file_ids
    return keys, found_ids


# -- private keys ----------------------------------------------------------------------------


def _raw_public(key: EccKey) -> bytes:
    der = key.public_key().export_key(format="DER")
    if len(der) != len(_SPKI_PREFIX) + 32 or not der.startswith(_SPKI_PREFIX):
        raise ConfigurationError("unexpected Ed25519 public key encoding from pycryptodome")
    return bytes(der[len(_SPKI_PREFIX) :])


def _utc_now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


class SigningKey:
    """An Ed25519 private key, loaded from a PEM file that others cannot read."""

    def __init__(self, key: EccKey, path: str = "<memory>"):
        self._key = key
        self.path = path
        self.public = PublicKey(_raw_public(key))

    def __repr__(self) -> str:
        return f"<SigningKey {self.key_id} from {self.path}>"

    @property
    def key_id(self) -> str:
        """The key id of the public key."""
        return self.public.key_id

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> SigningKey:
        """Read a private key file; refuse one that others may read (as ssh does) or that is no
        Ed25519 PEM key."""
        path = Path(path).expanduser()
        try:
            data, status = read_file(path, MAX_KEY_FILE_BYTES)
        except OSError as exc:
            raise ConfigurationError(f"cannot read signing key {str(path)!r}: {exc.strerror}") from None
        if KEY_TYPE.encode() in data and b"PRIVATE KEY" not in data:
            private = path.with_name(path.name.removesuffix(".pub"))
            beside = f" ({private})" if private != path else ""
            raise ConfigurationError(
                f"{str(path)!r} is a public key, the half researchers trust: sign with the private "
                f"key{beside}"
            )
        if os.name != "nt" and status.st_mode & 0o077:
            raise ConfigurationError(
                f"permissions {stat.S_IMODE(status.st_mode):04o} of signing key {str(path)!r} are too "
                f"open: others may read it; restrict it with: chmod 600 {path}"
            )
        ECC, _ = _crypto()
        try:
            key = ECC.import_key(data.decode("ascii"))
        except (ValueError, IndexError, TypeError, UnicodeDecodeError):
            key = None
        if key is None or key.curve != "Ed25519" or not key.has_private():
            raise ConfigurationError(
                f"{str(path)!r} is not an Ed25519 private key (an unencrypted PEM file, as written by "
                "djarchive-admin keygen)"
            )
        return cls(key, str(path))

    def sign(
        self,
        dataset: str,
        revision: str,
        manifest_data: bytes,
        *,
        signed_at: str | None = None,
        chunks_data: bytes | None = None,
    ) -> Signed:
        """Sign the statement that ``manifest_data`` is the manifest of ``dataset`` ``revision``
        (and ``chunks_data`` its chunk index, when it has one)."""
        _, eddsa = _crypto()
        statement = Statement(
            dataset=dataset,
            revision=revision,
            manifest_sha256=sha256_hex(manifest_data),
            key_id=self.key_id,
            signed_at=signed_at or _utc_now(),
            chunks_sha256=sha256_hex(chunks_data) if chunks_data is not None else None,
        )
        return Signed(statement, eddsa.new(self._key, "rfc8032").sign(statement.canonical()))


def _create(path: Path, data: bytes, mode: int) -> None:
    """Write a new file; never replace one (O_EXCL)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    try:
        descriptor = os.open(path, flags, mode)
    except FileExistsError:
        raise LocalPathError(f"{path} already exists: not overwritten (choose another name)") from None
    except OSError as exc:
        raise LocalPathError(f"cannot create {path}: {exc.strerror}") from None
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def generate_key(path: str | os.PathLike[str]) -> tuple[PublicKey, Path]:
    """Create a new Ed25519 key pair: the private key at ``path`` (mode 0600, never replacing a
    file; its folder created, mode 0700, when missing) and the public key line at ``path.pub``.
    Returns (public key, path of the .pub file)."""
    path = Path(path).expanduser()
    public_path = path.with_name(path.name + ".pub")
    for candidate in (path, public_path):
        if candidate.exists() or candidate.is_symlink():
            raise LocalPathError(f"{candidate} already exists: not overwritten (choose another name)")
    if not path.parent.is_dir():
        try:  # a fresh home has no ~/.djarchive yet: made private, as ssh makes ~/.ssh
            path.parent.mkdir(mode=0o700, parents=True)
        except OSError as exc:
            raise LocalPathError(
                f"cannot create the folder {path.parent} for {path}: {exc.strerror}"
            ) from None
    ECC, _ = _crypto()
    key = ECC.generate(curve="Ed25519")
    public = PublicKey(_raw_public(key))
    pem = key.export_key(format="PEM")
    _create(path, (pem if pem.endswith("\n") else pem + "\n").encode("ascii"), 0o600)
    comment = f"# djarchive signing key {public.key_id}, created {_utc_now()}; trust it with the line below\n"
    try:
        _create(public_path, f"{comment}{public.line}\n".encode("ascii"), 0o644)
    except LocalPathError:
        path.unlink()  # created just now: no key pair without its public half
        raise
    return public, public_path
