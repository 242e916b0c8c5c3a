"""Real permission checks: a moto server of its own with IAM enforcement on (INITIAL_NO_AUTH_ACTION_COUNT),
an admin key allowed everything and a read-only key. The read-only key can read but not write, and
the admin tool says so clearly. Enforcement applies to a whole moto process, hence a separate server."""

from __future__ import annotations

import pytest

pytest.importorskip("djarchive_admin")

import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import urlsplit

from minio import Minio
from minio.error import S3Error

from djarchive_admin.cli import main as admin_main
from djarchive_client import DJArchiveClient
from djarchive_client.cli import main as client_main
from tests.faults.support import error_lines, python
from tests.helpers import enforce_iam, iam_moto_server, manifest_bytes, read_tree, sha256, write_tree

BUCKET = "iam-archive"
FILES = {"a.bin": b"alpha", "sub/b.bin": b"beta" * 100}


@dataclass
class Keys:
    access: str
    secret: str


@dataclass
class IamServer:
    url: str
    admin: Keys
    reader: Keys

    def env(self, role: str, keys: Keys) -> dict[str, str]:
        prefix = f"DJARCHIVE_{role.upper()}_"
        return {
            f"{prefix}ENDPOINT": self.url,
            f"{prefix}BUCKET": BUCKET,
            f"{prefix}ACCESS_KEY": keys.access,
            f"{prefix}SECRET_KEY": keys.secret,
        }

    def minio(self, keys: Keys) -> Minio:
        return Minio(self.url.split("//")[1], access_key=keys.access, secret_key=keys.secret, secure=False)


def user_with_policy(iam, name: str, actions: list[str]) -> Keys:
    iam.create_user(UserName=name)
    policy = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": actions, "Resource": "*"}]}
    iam.put_user_policy(UserName=name, PolicyName=f"{name}-policy", PolicyDocument=json.dumps(policy))
    key = iam.create_access_key(UserName=name)["AccessKey"]
    return Keys(key["AccessKeyId"], key["SecretAccessKey"])


@pytest.fixture(scope="module")
def iam_server(tmp_path_factory) -> Iterator[IamServer]:
    import boto3

    with iam_moto_server(tmp_path_factory.mktemp("moto") / "server.log") as url:
        iam = boto3.client(
            "iam",
            endpoint_url=url,
            region_name="us-east-1",
            aws_access_key_id="setup",
            aws_secret_access_key="setup",
        )
        admin_keys = user_with_policy(iam, "curator", ["s3:*"])
        # AWS authorizes ListObjectsV2 as s3:ListBucket; moto 5.2.6 checks it under its operation's
        # name, s3:ListObjectsV2 (not an IAM action on AWS), so the reader is given both.
        reader_keys = user_with_policy(
            iam, "reader", ["s3:GetObject", "s3:ListBucket", "s3:ListObjectsV2", "s3:GetBucketLocation"]
        )
        setup = Minio(urlsplit(url).netloc, access_key="setup", secret_key="setup", secure=False)
        setup.make_bucket(BUCKET)
        for subpath, data in FILES.items():
            setup.put_object(
                BUCKET, f"ds/1/{subpath}", io.BytesIO(data), len(data), metadata={"sha256": sha256(data)}
            )
        manifest = manifest_bytes(FILES)
        setup.put_object(BUCKET, "ds/1/djarchive-manifest.csv", io.BytesIO(manifest), len(manifest))
        enforce_iam(url)  # from now on every request is authenticated and authorized
        yield IamServer(url, admin_keys, reader_keys)


@pytest.fixture
def as_reader(iam_server, monkeypatch):
    for name, value in {
        **iam_server.env("client", iam_server.reader),
        **iam_server.env("admin", iam_server.reader),
    }.items():
        monkeypatch.setenv(name, value)
    return iam_server


def test_enforcement_is_real(iam_server):
    """The control: a made-up key is refused, the admin key may write, the reader key may read."""
    with pytest.raises(S3Error) as caught:
        list(iam_server.minio(Keys("AKIANOSUCHKEY0000000", "nope")).list_objects(BUCKET))
    assert caught.value.code == "InvalidAccessKeyId"
    curator = iam_server.minio(iam_server.admin)
    curator.put_object(BUCKET, "scratch/x", io.BytesIO(b"x"), 1)
    curator.remove_object(BUCKET, "scratch/x")
    assert {
        o.object_name for o in iam_server.minio(iam_server.reader).list_objects(BUCKET, recursive=True)
    } >= {"ds/1/a.bin"}


def test_a_read_only_key_cannot_write(iam_server):
    reader = iam_server.minio(iam_server.reader)
    with pytest.raises(S3Error) as caught:
        reader.put_object(BUCKET, "ds/1/evil.bin", io.BytesIO(b"evil"), 4)
    assert caught.value.code == "AccessDenied"
    with pytest.raises(S3Error, match="AccessDenied"):
        reader.remove_object(BUCKET, "ds/1/a.bin")
    assert iam_server.minio(iam_server.admin).stat_object(BUCKET, "ds/1/a.bin").size == len(FILES["a.bin"])


def test_a_read_only_key_reads_the_archive(as_reader, tmp_path, capsys):
    client = DJArchiveClient()
    assert list(client.revisions()) == [("ds", "1")]
    client.download("ds", "1", tmp_path / "t", create_target=True)
    assert read_tree(tmp_path / "t") == FILES
    assert client_main(["verify", "ds", "1", str(tmp_path / "t"), "-q"]) == 0


def test_upload_with_a_read_only_key_is_denied_and_writes_nothing(as_reader, tmp_path, capsys, no_backoff):
    source = write_tree(tmp_path / "source", {"x.bin": b"x", "y.bin": b"y"})
    assert admin_main(["upload", "ds", "2", str(source)]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    last = err.strip().splitlines()[-1]
    assert last.startswith("djarchive-admin: error: ")
    assert "access denied" in err
    assert "check the credentials and their permissions" in err
    assert no_backoff == []  # a refusal is not retried
    keys = {o.object_name for o in as_reader.minio(as_reader.admin).list_objects(BUCKET, recursive=True)}
    assert not any(key.startswith(("ds/2/", ".djarchive")) for key in keys)


def test_upload_with_a_read_only_key_is_one_line(as_reader, tmp_path, capsys):
    source = write_tree(tmp_path / "source", {"x.bin": b"x", "y.bin": b"y"})
    assert admin_main(["upload", "ds", "2", str(source)]) == 1
    [line] = error_lines(capsys.readouterr().err, "djarchive-admin")
    assert line.startswith("djarchive-admin: error: ")
    assert "access denied" in line


@pytest.mark.parametrize(
    "argv",
    [["retract", "ds", "1"], ["retract", "ds", "1", "--purge", "--yes"]],
    ids=" ".join,
)
def test_other_writes_with_a_read_only_key_are_one_clear_line(as_reader, capsys, argv):
    assert admin_main(argv) == 1
    out, err = capsys.readouterr()
    [line] = error_lines(err, "djarchive-admin")
    assert out == ""
    assert "access denied" in line, line
    assert "check the credentials and their permissions" in line
    assert ("ds", "1") in set(DJArchiveClient().revisions())  # still published, untouched


@pytest.mark.parametrize("which", ["wrong secret", "unknown key"])
def test_bad_credentials_are_one_clear_line(iam_server, which):
    keys = (
        Keys(iam_server.reader.access, "not-the-secret-at-all")
        if which == "wrong secret"
        else Keys("AKIAUNKNOWNKEY000000", "whatever-secret")
    )
    result = python("-m", "djarchive_admin.cli", "--debug", "revisions", env=iam_server.env("admin", keys))
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("djarchive-admin: error: ")
    assert "access denied" in last
    assert ("SignatureDoesNotMatch" if which == "wrong secret" else "InvalidAccessKeyId") in last
    assert keys.secret not in result.stdout + result.stderr
    assert keys.access not in result.stdout + result.stderr


def test_the_read_only_secret_never_shows_at_debug_level(as_reader, tmp_path):
    logfile = tmp_path / "log"
    env = {"DJARCHIVE_LOGFILE": str(logfile)}
    source = write_tree(tmp_path / "source", {"x.bin": b"x"})
    results = [
        python("-m", "djarchive_admin.cli", "--debug", "upload", "ds", "3", str(source), env=env),
        python("-m", "djarchive_client.cli", "--debug", "files", "ds", "1", env=env),
    ]
    assert [result.returncode for result in results] == [1, 0]
    text = "".join(result.stdout + result.stderr for result in results) + logfile.read_text()
    assert "DEBUG" in text
    assert as_reader.reader.secret not in text
    assert as_reader.reader.access not in text
