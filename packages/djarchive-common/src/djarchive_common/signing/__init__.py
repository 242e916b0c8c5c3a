"""Signed manifests, in three rooms:

- :mod:`.keys`: Ed25519 keys, key lines and key files, a curator's private key, new key pairs;
- :mod:`.statements`: what is signed (the statement) and the signatures file that stores it;
- :mod:`.checks`: checking a revision's signatures against the keys a client trusts.

Callers import from here; the rooms import each other.
"""

from .checks import (
    INVALID,
    UNKNOWN,
    UNSIGNED,
    UNVERIFIED,
    VALID,
    SignatureStatus,
    Trust,
    check_signatures,
)
from .keys import (
    KEY_TYPE,
    MAX_KEY_FILE_BYTES,
    PublicKey,
    SigningKey,
    generate_key,
    parse_key_items,
    parse_public_key,
    read_key_file,
)
from .statements import (
    BAD_SIGNATURE,
    DIGEST_MISMATCH,
    MALFORMED,
    MAX_FIELDS,
    MAX_SIGNATURE_BYTES,
    MAX_SIGNATURES,
    MISSING,
    OTHER_REVISION,
    REASONS,
    REVOKED,
    SIGNATURES_FORMAT,
    STATEMENT_TYPE,
    UNTRUSTED,
    Signed,
    Statement,
    merge_signatures,
    parse_signatures,
    sha256_hex,
    signatures_bytes,
)

__all__ = [
    "BAD_SIGNATURE",
    "DIGEST_MISMATCH",
    "INVALID",
    "KEY_TYPE",
    "MALFORMED",
    "MAX_FIELDS",
    "MAX_KEY_FILE_BYTES",
    "MAX_SIGNATURES",
    "MAX_SIGNATURE_BYTES",
    "MISSING",
    "OTHER_REVISION",
    "REASONS",
    "REVOKED",
    "SIGNATURES_FORMAT",
    "STATEMENT_TYPE",
    "UNKNOWN",
    "UNSIGNED",
    "UNTRUSTED",
    "UNVERIFIED",
    "VALID",
    "PublicKey",
    "SignatureStatus",
    "Signed",
    "SigningKey",
    "Statement",
    "Trust",
    "check_signatures",
    "generate_key",
    "merge_signatures",
    "parse_key_items",
    "parse_public_key",
    "parse_signatures",
    "read_key_file",
    "sha256_hex",
    "signatures_bytes",
]
