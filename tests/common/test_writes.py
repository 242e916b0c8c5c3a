"""The digests every write carries (djarchive_common.writes), checked where no server is needed:
what minio's client signs over https, and the checksum's encoding."""

from __future__ import annotations

import base64
import hashlib

import pytest
from minio.credentials import Credentials

from djarchive_common.connection import _import_minio
from djarchive_common.writes import CONTENT_SHA256, WriteChecks, checksum_of, digest_headers, signing_client

BODY = b"the bytes of one object\n"
DIGEST = hashlib.sha256(BODY).hexdigest()
KEYS = Credentials("access-key", "secret-key")


@pytest.mark.parametrize("secure", [True, False])
def test_the_real_sha256_is_signed_over_https_and_http(secure):
    """minio-py signs UNSIGNED-PAYLOAD over https (and hashes the body again over http); the
    client djarchive uses signs the body's sha256 in both cases."""
    plain = _import_minio()("s3.example.org", access_key="a", secret_key="b", secure=secure)
    signing = signing_client(_import_minio())("s3.example.org", access_key="a", secret_key="b", secure=secure)
    unsigned, _ = plain._build_headers("s3.example.org", {}, BODY, KEYS)
    assert unsigned[CONTENT_SHA256] == ("UNSIGNED-PAYLOAD" if secure else DIGEST)
    built, _ = signing._build_headers("s3.example.org", {}, BODY, KEYS)
    assert built[CONTENT_SHA256] == DIGEST
    assert built["Content-Length"] == str(len(BODY))


def test_a_known_digest_is_signed_as_given():
    """A digest the caller knows (from the manifest) is signed as it is: the body is not hashed again."""
    signing = signing_client(_import_minio())("s3.example.org", access_key="a", secret_key="b")
    other = hashlib.sha256(b"other").hexdigest()
    built, _ = signing._build_headers("s3.example.org", {CONTENT_SHA256: other}, BODY, KEYS)
    assert built[CONTENT_SHA256] == other  # what the probe sends to see whether a server checks it
    assert built["Content-Length"] == str(len(BODY))
    assert "Content-MD5" not in built


def test_digest_headers():
    assert checksum_of(DIGEST) == base64.b64encode(hashlib.sha256(BODY).digest()).decode()
    assert digest_headers(DIGEST, WriteChecks()) == {
        CONTENT_SHA256: DIGEST,
        "x-amz-checksum-sha256": checksum_of(DIGEST),
    }
    assert digest_headers(DIGEST, WriteChecks(checksum_header=False)) == {CONTENT_SHA256: DIGEST}
