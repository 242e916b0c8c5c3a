"""Signing without a store: keys and key files, statements, the signatures file, checks, and the
trust and signing-key configuration."""

from __future__ import annotations

import base64
import json
import os
import stat
import subprocess
import sys
from importlib import metadata

import pytest

from djarchive_common import signing
from djarchive_common.config import resolve_sign_key, resolve_trust
from djarchive_common.errors import ConfigurationError, LocalPathError, SignatureError
from djarchive_common.signing import (
    PublicKey,
    SigningKey,
    Trust,
    check_signatures,
    generate_key,
    merge_signatures,
    parse_key_items,
    parse_public_key,
    parse_signatures,
    signatures_bytes,
)
from tests.helpers import never_waits, sha256

DJ_MAJOR = int(metadata.version("datajoint").split(".")[0])
MANIFEST = b'"3","' + sha256(b"abc").encode() + b'","a.dat"\n'
POSIX = pytest.mark.skipif(os.name == "nt", reason="POSIX file modes")


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    """Three key pairs: (SigningKey, PublicKey, path of the .pub file) each."""
    folder = tmp_path_factory.mktemp("keys")
    found = []
    for name in ("alice", "bob", "mallory"):
        public, public_path = generate_key(folder / name)
        found.append((SigningKey.load(folder / name), public, public_path))
    return found


def signed(key: SigningKey, dataset="ds", revision="001", manifest=MANIFEST) -> bytes:
    return signatures_bytes([key.sign(dataset, revision, manifest)])


# -- keys ------------------------------------------------------------------------------------


@POSIX
def test_keygen_writes_a_private_key_only_its_owner_can_read(tmp_path):
    public, public_path = generate_key(tmp_path / "curator.key")
    assert stat.S_IMODE((tmp_path / "curator.key").stat().st_mode) == 0o600
    assert public_path == tmp_path / "curator.key.pub"
    lines = public_path.read_text().splitlines()
    assert lines[0].startswith(f"# djarchive signing key {public.key_id}")
    assert lines[1] == public.line
    assert public.line.startswith("djarchive-ed25519 ")
    assert len(public.line.split()) == 2
    assert len(base64.b64decode(public.line.split()[1])) == 32
    assert public.key_id == sha256(public.raw)[:16]
    assert SigningKey.load(tmp_path / "curator.key").public == public
    assert "PRIVATE KEY" in (tmp_path / "curator.key").read_text()


def test_keygen_never_overwrites(tmp_path):
    (tmp_path / "taken").write_text("precious")
    with pytest.raises(LocalPathError, match="taken already exists: not overwritten"):
        generate_key(tmp_path / "taken")
    assert (tmp_path / "taken").read_text() == "precious"
    assert not (tmp_path / "taken.pub").exists()
    (tmp_path / "half.pub").write_text("precious")
    with pytest.raises(LocalPathError, match=r"half.pub already exists"):
        generate_key(tmp_path / "half")
    assert not (tmp_path / "half").exists()
    generate_key(tmp_path / "k")
    with pytest.raises(LocalPathError, match="already exists"):
        generate_key(tmp_path / "k")


@POSIX
@pytest.mark.parametrize("mode", [0o640, 0o604, 0o644, 0o660, 0o700 | 0o004])
def test_a_private_key_others_can_read_is_refused(tmp_path, mode):
    generate_key(tmp_path / "k")
    os.chmod(tmp_path / "k", mode)
    with pytest.raises(
        ConfigurationError, match=r"are too open: others may read it; restrict it with: chmod 600"
    ):
        SigningKey.load(tmp_path / "k")


def test_a_file_that_is_no_private_key_is_refused(tmp_path, keys):
    for content in ("", "garbage"):
        path = tmp_path / "notakey"
        path.write_text(content)
        path.chmod(0o600)
        with pytest.raises(ConfigurationError, match="is not an Ed25519 private key"):
            SigningKey.load(path)
    public = keys[0][2]  # mode 0644, as keygen writes it: the mistake is the key, not its mode
    with pytest.raises(ConfigurationError, match=r"is a public key, the half researchers trust") as caught:
        SigningKey.load(public)
    assert str(caught.value).endswith(f"({public.with_suffix('')})")
    assert "chmod" not in str(caught.value)
    with pytest.raises(ConfigurationError, match="cannot read signing key"):
        SigningKey.load(tmp_path / "missing")


def test_public_key_lines(keys):
    public = keys[0][1]
    assert parse_public_key(public.line) == public
    assert parse_public_key(f"  {public.line}   alice@lab  ") == public  # a trailing comment
    for bad in (
        "",
        "ssh-ed25519 AAAA",
        "djarchive-ed25519",
        "djarchive-ed25519 !!!",
        "djarchive-ed25519 AAAA",
    ):
        with pytest.raises(ConfigurationError, match="invalid public key"):
            parse_public_key(bad)


def test_key_items_lines_files_and_ids(tmp_path, keys):
    (alice, alice_public, alice_file), (_, bob_public, _) = keys[0], keys[1]
    found, ids = parse_key_items(f"{alice_public.line}, {bob_public.line}", "env")
    assert found == [alice_public, bob_public]
    assert ids == set()
    found, _ = parse_key_items([str(alice_file), f"{bob_public.line}\n"], "--trust")
    assert found == [alice_public, bob_public]
    found, ids = parse_key_items("0123456789ABCDEF;" + bob_public.line, "revoke", ids=True)
    assert found == [bob_public]
    assert ids == {"0123456789abcdef"}
    with pytest.raises(ConfigurationError, match="'nope' is neither"):
        parse_key_items("nope", "--trust")
    with pytest.raises(ConfigurationError, match=r"holds a private key: trust its public key \(alice.pub\)"):
        parse_key_items(alice.path, "--trust")


def test_private_key_material_is_never_echoed(keys):
    with open(keys[0][0].path) as handle:
        pem = handle.read()
    body = pem.splitlines()[1]
    for value in (pem, body):
        with pytest.raises(ConfigurationError) as caught:
            parse_key_items(value, "DJARCHIVE_CLIENT_TRUSTED_KEYS")
        assert body not in str(caught.value)


# -- statements and the signatures file ------------------------------------------------------


def test_statement_is_canonical_json_of_exactly_its_fields(keys):
    entry = keys[0][0].sign("ds", "001", MANIFEST, signed_at="2026-01-02T03:04:05Z")
    assert entry.statement.canonical() == (
        b'{"dataset":"ds","key_id":"' + keys[0][1].key_id.encode() + b'","manifest_sha256":"'
        + sha256(MANIFEST).encode() + b'","revision":"001","signed_at":"2026-01-02T03:04:05Z",'
        b'"type":"djarchive-manifest-signature/1"}'
    )  # fmt: skip
    document = json.loads(signatures_bytes([entry]))
    assert document["format"] == "djarchive-manifest-signatures/1"
    assert parse_signatures(signatures_bytes([entry])) == [entry]


def _document(keys, **change):
    document = json.loads(signed(keys[0][0]))
    for path, value in change.items():
        target = document
        *parents, last = path.split("__")
        for part in parents:
            target = target[int(part)] if part.isdigit() else target[part]
        if value is None:
            del target[last]
        else:
            target[last] = value
    return json.dumps(document).encode()


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda keys: b"", "not valid JSON"),
        (lambda keys: b"\xff\xfe", "not UTF-8"),
        (lambda keys: signed(keys[0][0])[:-20], "not valid JSON"),
        (lambda keys: b"[]", "the document is not a JSON object"),
        (lambda keys: b'{"format": "djarchive-manifest-signatures/1", "signatures": []}', "non-empty list"),
        (lambda keys: _document(keys, extra="x"), "unexpected field 'extra'"),
        (lambda keys: _document(keys, format="v2"), "format is not"),
        (lambda keys: _document(keys, signatures__0__statement__note="hi"), "unexpected field 'note'"),
        (lambda keys: _document(keys, signatures__0__statement__signed_at=None), "missing field 'signed_at'"),
        (lambda keys: _document(keys, signatures__0__statement__revision="../x"), "revision has an invalid"),
        (lambda keys: _document(keys, signatures__0__statement__manifest_sha256="AB" * 32), "sha256"),
        (lambda keys: _document(keys, signatures__0__statement__type="other"), "type is not"),
        (lambda keys: _document(keys, signatures__0__statement__key_id=7), "key_id has an invalid value"),
        (lambda keys: _document(keys, signatures__0__signature="AAAA"), "base64 of 64 bytes"),
        (lambda keys: _document(keys, signatures__0__signature="not base64!"), "not base64"),
        (lambda keys: signed(keys[0][0]).replace(b'"revision": "001"', b'"revision": "1", "revision": "001"'),
         "duplicate JSON key 'revision'"),
        (lambda keys: signed(keys[0][0]).replace(b'"format"', b'"signatures": [], "format"'),
         "duplicate JSON key 'signatures'"),
        (lambda keys: signatures_bytes([keys[0][0].sign("ds", "001", MANIFEST)] * 2), "a second signature"),
        (lambda keys: b'{"format": NaN}', "NaN is not JSON"),
        (lambda keys: b"[" * 100000, "nested too deeply"),
        (lambda keys: b" " * (signing.MAX_SIGNATURE_BYTES + 1), "larger than"),
    ],
)  # fmt: skip
def test_malformed_signatures_files_are_refused_whole(keys, make, message):
    with pytest.raises(SignatureError, match=message) as caught:
        parse_signatures(make(keys))
    assert caught.value.reason == "malformed"
    assert str(caught.value).startswith("malformed djarchive-manifest.sig: ")


# -- hostile signatures files, and key files that are no files --------------------------------

NO_PIPES = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes (nor SIGALRM) here")


def _many_fields(count: int) -> bytes:
    """A document with ``count`` fields besides its own two, small enough to pass the size cap."""
    head = '{"format":"djarchive-manifest-signatures/1","signatures":[]'
    return (head + "".join(f',"{number:x}":0' for number in range(count)) + "}").encode()


def test_a_signatures_file_of_thirty_thousand_fields_is_refused_by_a_cap_in_one_short_line(keys):
    data = _many_fields(29000)
    assert len(data) <= signing.MAX_SIGNATURE_BYTES  # under the size cap: the field cap refuses it
    status = check_signatures(data, MANIFEST, "ds", "001", Trust())  # no trusted keys: a warning
    assert (status.status, status.reason) == ("invalid", "malformed")
    assert status.detail == ("malformed djarchive-manifest.sig: an object with 29002 fields (at most 16)")
    assert len(str(status)) < 200
    error = refusal(data, Trust((keys[0][1],)))
    assert error.reason == "malformed"
    assert len(str(error)) < 300
    entries = (
        b'{"format":"djarchive-manifest-signatures/1","signatures":[' + b",".join([b"{}"] * 30000) + b"]}"
    )
    with pytest.raises(SignatureError, match=r"^malformed djarchive-manifest.sig: more than 64 signatures$"):
        parse_signatures(entries)


def test_messages_about_a_signatures_file_name_a_few_fields_cut_short(keys):
    document = json.loads(signed(keys[0][0]))
    document.update({f"{number:02d}{'x' * 5000}": 0 for number in range(14)})
    with pytest.raises(SignatureError) as caught:
        parse_signatures(json.dumps(document).encode())
    message = str(caught.value)
    assert message.startswith("malformed djarchive-manifest.sig: the document: unexpected field '00xxx")
    assert message.endswith("... and 4 more")
    assert len(message) < 800
    long_name = "y" * 100000
    data = f'{{"{long_name}": 1, "{long_name}": 2}}'.encode()
    with pytest.raises(SignatureError, match=r": duplicate JSON key 'y{40}'\.\.\.$") as caught:
        parse_signatures(data)
    assert len(str(caught.value)) < 200


def test_reports_about_many_signers_name_a_few_key_ids(keys):
    from Crypto.PublicKey import ECC

    signers = [SigningKey(ECC.generate(curve="Ed25519")) for _ in range(12)]
    data = signatures_bytes([signer.sign("ds", "001", MANIFEST) for signer in signers])
    ids = [signer.key_id for signer in signers]
    status = check_signatures(data, MANIFEST, "ds", "001", Trust())
    named = f"{', '.join(ids[:10])} and 2 more"
    assert str(status) == f"signed by key {named}, not verified (no trusted keys configured)"
    error = refusal(data, Trust((keys[0][1],)))
    assert f"signed only by untrusted keys {named} (trusted: " in str(error)


@NO_PIPES
def test_key_files_that_are_no_regular_files_are_refused_without_waiting(tmp_path):
    os.mkfifo(tmp_path / "pipe")  # opening it to read would wait for a writer
    (tmp_path / "folder").mkdir()
    for path in (tmp_path / "pipe", tmp_path / "folder", "/dev/null"):
        environ = {"DJARCHIVE_CLIENT_TRUSTED_KEYS_FILE": str(path)}
        with never_waits(f"reading {path}"), pytest.raises(ConfigurationError) as caught:
            resolve_trust(environ=environ)
        assert str(caught.value) == (
            f"cannot read key file {str(path)!r} (DJARCHIVE_CLIENT_TRUSTED_KEYS_FILE): not a regular file"
        )
    with never_waits("loading a signing key"), pytest.raises(ConfigurationError) as caught:
        SigningKey.load(tmp_path / "pipe")
    assert str(caught.value) == f"cannot read signing key {str(tmp_path / 'pipe')!r}: not a regular file"


# -- checking --------------------------------------------------------------------------------


def refusal(data, trust, dataset="ds", revision="001", manifest=MANIFEST) -> SignatureError:
    with pytest.raises(SignatureError) as caught:
        check_signatures(data, manifest, dataset, revision, trust)
    assert str(caught.value).startswith(f"signature check failed for {dataset} {revision}: ")
    assert "\n" not in str(caught.value)
    return caught.value


def test_check_with_trusted_keys(keys):
    (alice, alice_public, _), (_bob, bob_public, _), (mallory, _, _) = keys
    trust = Trust((alice_public, bob_public))
    status = check_signatures(signed(alice), MANIFEST, "ds", "001", trust)
    assert (status.status, status.signer, status.key_ids) == ("valid", alice.key_id, (alice.key_id,))
    assert status.valid
    assert str(status).startswith(f"signed by trusted key {alice.key_id} at ")
    assert refusal(None, trust).reason == "missing"
    assert refusal(signed(alice), trust, manifest=MANIFEST + b" ").reason == "digest-mismatch"
    assert refusal(signed(alice), trust, revision="002").reason == "other-revision"
    assert refusal(signed(alice), trust, dataset="other").reason == "other-revision"
    error = refusal(signed(mallory), trust)
    assert error.reason == "untrusted-key"
    assert mallory.key_id in str(error)
    assert alice.key_id in str(error)
    assert refusal(signed(alice), Trust((alice_public,), frozenset({alice.key_id}))).reason == "revoked-key"
    assert refusal(b"garbage", trust).reason == "malformed"
    # a statement altered after signing, and a signature claiming a trusted key's id
    document = json.loads(signed(alice))
    document["signatures"][0]["statement"]["signed_at"] = "2000-01-01T00:00:00Z"
    assert refusal(json.dumps(document).encode(), trust).reason == "bad-signature"
    forged = json.loads(signed(mallory))
    forged["signatures"][0]["statement"]["key_id"] = alice.key_id
    assert refusal(json.dumps(forged).encode(), trust).reason == "bad-signature"


def test_one_valid_signature_by_a_trusted_key_suffices(keys):
    (alice, alice_public, _), (bob, bob_public, _), (mallory, _, _) = keys
    both = signatures_bytes([mallory.sign("ds", "001", MANIFEST), bob.sign("ds", "001", MANIFEST)])
    assert check_signatures(both, MANIFEST, "ds", "001", Trust((bob_public,))).signer == bob.key_id
    # revoking bob leaves alice's signature to carry the revision; revoking both refuses it
    two = signatures_bytes([bob.sign("ds", "001", MANIFEST), alice.sign("ds", "001", MANIFEST)])
    trust = Trust((alice_public, bob_public), frozenset({bob.key_id}))
    assert check_signatures(two, MANIFEST, "ds", "001", trust).signer == alice.key_id
    everything_revoked = Trust((alice_public, bob_public), frozenset({bob.key_id, alice.key_id}))
    assert everything_revoked.enforced  # revoking every trusted key does not switch checks off
    assert refusal(two, everything_revoked).reason == "revoked-key"


def test_without_trusted_keys_the_status_is_reported_only(keys):
    alice = keys[0][0]
    trust = Trust()

    def status(data, **where):
        return check_signatures(
            data, where.get("manifest", MANIFEST), "ds", where.get("revision", "001"), trust
        )

    assert status(None).status == "unsigned"
    found = status(signed(alice))
    assert (found.status, found.signer, found.key_ids) == ("unverified", None, (alice.key_id,))
    assert (status(b"junk").status, status(b"junk").reason) == ("invalid", "malformed")
    assert status(signed(alice), manifest=b"x").reason == "digest-mismatch"
    assert status(signed(alice), revision="002").reason == "other-revision"
    assert status(signed(alice)).to_dict()["key_ids"] == [alice.key_id]


def test_reporting_needs_no_cryptography(keys):
    data = signed(keys[0][0]).decode()
    code = (
        "import sys; from djarchive_common.signing import check_signatures, Trust; "
        f"s = check_signatures({data!r}.encode(), {MANIFEST!r}, 'ds', '001', Trust()); "
        "assert s.status == 'unverified', s; "
        "assert not [m for m in sys.modules if m.startswith('Crypto')], 'pycryptodome imported'"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_merge_appends_replaces_and_drops(keys):
    (alice, _, _), (bob, _, _), _ = keys
    content, entries, dropped, replaced = merge_signatures(
        None, alice.sign("ds", "001", MANIFEST), "ds", "001", MANIFEST
    )
    assert [e.statement.key_id for e in entries] == [alice.key_id]
    assert (dropped, replaced) == (0, False)
    content, entries, dropped, replaced = merge_signatures(
        content, bob.sign("ds", "001", MANIFEST), "ds", "001", MANIFEST
    )
    assert [e.statement.key_id for e in entries] == [alice.key_id, bob.key_id]
    assert not replaced
    again = alice.sign("ds", "001", MANIFEST, signed_at="2030-01-01T00:00:00Z")
    content, entries, dropped, replaced = merge_signatures(content, again, "ds", "001", MANIFEST)
    assert entries == [again, entries[1]]
    assert replaced
    assert dropped == 0
    # other content: every old signature goes; without a new one nothing is left
    assert merge_signatures(content, None, "ds", "001", b"other")[::2] == (None, 2)
    assert merge_signatures(b"junk", None, "ds", "001", MANIFEST)[::2] == (None, 1)
    assert parse_signatures(content) == entries


# -- configuration ---------------------------------------------------------------------------


def test_trust_precedence_arguments_environment_datajoint(keys, monkeypatch, tmp_path):
    (_, alice, alice_file), (_, bob, _), (_, mallory, _) = keys
    environ = {"DJARCHIVE_CLIENT_TRUSTED_KEYS": f"{bob.line};{mallory.line}"}
    assert resolve_trust(environ={}).keys == ()
    assert not resolve_trust(environ={}).enforced
    assert resolve_trust(environ=environ).keys == (bob, mallory)
    assert resolve_trust(trusted_keys=[str(alice_file)], environ=environ).keys == (alice,)  # arguments win
    trust_file = tmp_path / "trusted"
    trust_file.write_text(f"# our curators\n{alice.line} alice\n\n{bob.line}\n")
    both = resolve_trust(environ={"DJARCHIVE_CLIENT_TRUSTED_KEYS_FILE": str(trust_file), **environ})
    assert both.keys == (bob, mallory, alice)
    assert both.sources == ("DJARCHIVE_CLIENT_TRUSTED_KEYS", "DJARCHIVE_CLIENT_TRUSTED_KEYS_FILE")


def test_revocations_add_up_from_every_level(keys):
    (_, alice, _), (_, bob, _), _ = keys
    environ = {
        "DJARCHIVE_CLIENT_TRUSTED_KEYS": f"{alice.line},{bob.line}",
        "DJARCHIVE_CLIENT_REVOKED_KEYS": bob.key_id,
    }
    trust = resolve_trust(revoked_keys=[alice.line], environ=environ)
    assert trust.revoked == {alice.key_id, bob.key_id}
    assert trust.keys_with_id(alice.key_id) == []
    assert trust.enforced


def test_trust_configuration_errors(keys, tmp_path):
    (_, alice, _), _, _ = keys
    with pytest.raises(ConfigurationError, match="no trusted key is configured: give trusted_keys=KEY"):
        resolve_trust(require_signature=True, environ={})
    assert resolve_trust(trusted_keys=alice.line, require_signature=True, environ={}).enforced
    empty = tmp_path / "empty"
    empty.write_text("# nobody yet\n")
    with pytest.raises(ConfigurationError, match="DJARCHIVE_CLIENT_TRUSTED_KEYS_FILE names no public key"):
        resolve_trust(environ={"DJARCHIVE_CLIENT_TRUSTED_KEYS_FILE": str(empty)})
    with pytest.raises(ConfigurationError, match="cannot read key file"):
        resolve_trust(environ={"DJARCHIVE_CLIENT_TRUSTED_KEYS_FILE": str(tmp_path / "missing")})
    bad = tmp_path / "bad"
    bad.write_text(f"{alice.line}\nssh-ed25519 AAAA\n")
    with pytest.raises(ConfigurationError, match=r"invalid public key in .*bad, line 2"):
        resolve_trust(trusted_keys=[str(bad)], environ={})


@pytest.fixture
def dj_config():
    """datajoint's live config (imported quietly), restored after the test."""
    from djarchive_common.config.sources import _import_datajoint

    datajoint = _import_datajoint()
    assert datajoint is not None
    config = datajoint.config
    saved_custom = config.get("custom")
    saved_stores = json.loads(json.dumps(config.get("stores") or {}))
    yield config
    if DJ_MAJOR == 0:
        config["custom"] = saved_custom if saved_custom is not None else {}
        config["stores"] = saved_stores
    else:
        config.stores.clear()
        config.stores.update(saved_stores)


def test_trust_and_sign_key_from_datajoint(keys, dj_config):
    (_, alice, _), (_, bob, _), _ = keys
    client = {"trusted_keys": [alice.line, bob.line], "revoked_keys": f"{bob.key_id}"}
    if DJ_MAJOR == 0:
        dj_config["custom"] = {
            **{f"djarchive.client.{name}": value for name, value in client.items()},
            "djarchive.admin.sign_key": "/keys/curator.key",
        }
        source = "datajoint config custom['djarchive.client.trusted_keys']"
        key_source = "datajoint config custom['djarchive.admin.sign_key']"
    else:
        dj_config.stores["djarchive_client"] = {
            "protocol": "s3",
            "endpoint": "e",
            "bucket": "b-bucket",
            **client,
        }
        dj_config.stores["djarchive_admin"] = {
            "protocol": "s3",
            "endpoint": "e",
            "bucket": "b-bucket",
            "sign_key": "/keys/curator.key",
        }
        source = "datajoint config stores.djarchive_client.trusted_keys"
        key_source = "datajoint config stores.djarchive_admin.sign_key"
    trust = resolve_trust()
    assert trust.keys == (alice, bob)
    assert trust.revoked == {bob.key_id}
    assert trust.sources == (source,)
    assert resolve_sign_key() == ("/keys/curator.key", key_source)
    assert resolve_trust(environ={"DJARCHIVE_CLIENT_TRUSTED_KEYS": bob.line, "DJ_HOST": "x"}).keys == (bob,)


@pytest.mark.skipif(DJ_MAJOR < 2, reason="datajoint 2.x configuration (tox factor dj2)")
def test_trust_from_datajoint_json(keys, isolated_config):
    alice = keys[0][1]
    stores = {
        "djarchive_client": {
            "protocol": "s3",
            "endpoint": "e",
            "bucket": "b-bucket",
            "trusted_keys": alice.line,
        }
    }
    (isolated_config / "datajoint.json").write_text(json.dumps({"stores": stores}))
    code = "from djarchive_client import client; print(client().trust.describe())"
    result = subprocess.run([sys.executable, "-c", code], cwd=isolated_config, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert (
        result.stdout.strip()
        == f"trusted: {alice.key_id} from datajoint config stores.djarchive_client.trusted_keys"
    )


def test_sign_key_precedence(monkeypatch):
    assert resolve_sign_key(environ={}) is None
    assert resolve_sign_key(environ={"DJARCHIVE_ADMIN_SIGN_KEY": "/e"}) == ("/e", "DJARCHIVE_ADMIN_SIGN_KEY")
    assert resolve_sign_key("admin", "/a", environ={"DJARCHIVE_ADMIN_SIGN_KEY": "/e"}) == (
        "/a",
        "sign_key=",
    )
    assert resolve_sign_key("admin", "/a", argument_names={"sign_key": "--sign-key"})[1] == "--sign-key"


def test_values_are_immutable_and_compare_by_their_fields(keys):
    status = signing.SignatureStatus("valid", "ab" * 8, key_ids=["ab" * 8])
    assert status == signing.SignatureStatus("valid", "ab" * 8, key_ids=("ab" * 8,))
    assert len({status, signing.SignatureStatus("valid", "ab" * 8, key_ids=("ab" * 8,))}) == 1
    assert repr(status).startswith(
        "SignatureStatus(chunks_sha256=None, detail=None, key_ids=('abababababababab',), "
    )
    with pytest.raises(AttributeError, match="SignatureStatus is immutable"):
        status.status = "unsigned"
    with pytest.raises(AttributeError, match="Trust is immutable"):
        Trust().keys = (keys[0][1],)


def test_public_key_repr_and_size():
    with pytest.raises(ValueError, match="32 bytes"):
        PublicKey(b"short")
    key = PublicKey(bytes(32))
    assert repr(key) == f"PublicKey(key_id={key.key_id!r})"
    assert str(key) == key.line


@pytest.mark.skipif(DJ_MAJOR < 2, reason="datajoint 2.x configuration (tox factor dj2)")
def test_trust_from_the_seeds_custom_keys_under_datajoint_2(keys, isolated_config):
    """dj_local_conf.json's custom section, which datajoint 2.x no longer reads, is read as for the
    other settings."""
    alice, bob = keys[0][1], keys[1][1]
    custom = {
        "djarchive.client.trusted_keys": f"{alice.line},{bob.line}",
        "djarchive.client.revoked_keys": bob.key_id,
    }
    (isolated_config / "dj_local_conf.json").write_text(json.dumps({"custom": custom}))
    trust = resolve_trust()
    assert trust.keys == (alice, bob)
    assert trust.revoked == {bob.key_id}
    assert trust.sources == ("dj_local_conf.json custom['djarchive.client.trusted_keys']",)
