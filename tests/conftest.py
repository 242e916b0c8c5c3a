"""Shared fixtures: configuration isolation and a real S3 server (moto) on 127.0.0.1."""

from __future__ import annotations

import io
import json
import logging
import os
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

import pytest

from tests.helpers import manifest_bytes, sha256
from tests.mirror_server import StaticMirror

ADMIN_ACCESS_KEY = "djarchive-test-admin"
ADMIN_SECRET_KEY = "s3cr3t-Adm1n-K3y-never-printed"
OWN_LOGGERS = ("djarchive_common", "djarchive_client", "djarchive_admin", "minio", "urllib3")


def _version(distribution: str) -> str:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "not installed"


def pytest_report_header(config: pytest.Config) -> list[str]:
    names = ("datajoint", "minio", "moto", "urllib3", "djarchive-client", "djarchive-admin")
    return ["versions: " + ", ".join(f"{name} {_version(name)}" for name in names)]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test under tests/faults is slow (proxies, subprocesses, kills): ``-m 'not slow'``
    leaves them out."""
    faults = Path(__file__).parent / "faults"
    for item in items:
        if faults in item.path.parents:
            item.add_marker(pytest.mark.slow)


@pytest.fixture(autouse=True)
def isolated_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Run every test in an empty working directory and home, with no DJ_*/DJARCHIVE_* variables,
    so a developer's own datajoint.json or environment is never read; restore logging after."""
    for name in list(os.environ):
        if name.startswith(("DJ_", "DJARCHIVE_")):
            monkeypatch.delenv(name)
    home = tmp_path / "home"
    work = tmp_path / "cwd"
    home.mkdir()
    work.mkdir()
    (work / ".git").mkdir()  # a project boundary: datajoint 2.x stops searching for datajoint.json here
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(work)
    saved = {}
    for name in OWN_LOGGERS:
        logger = logging.getLogger(name)
        saved[name] = (list(logger.handlers), logger.level, logger.propagate)
    yield work
    for name, (handlers, level, propagate) in saved.items():
        logger = logging.getLogger(name)
        for handler in list(logger.handlers):
            if handler not in handlers:
                logger.removeHandler(handler)
                handler.close()
        logger.setLevel(level)
        logger.propagate = propagate


@dataclass
class S3Server:
    """A running S3 endpoint on 127.0.0.1."""

    host: str
    port: int

    @property
    def endpoint(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.endpoint}"

    def minio(self, access_key: str = ADMIN_ACCESS_KEY, secret_key: str = ADMIN_SECRET_KEY):
        from minio import Minio

        return Minio(self.endpoint, access_key=access_key, secret_key=secret_key, secure=False)


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    """moto's ThreadedMotoServer on a free port: real S3 over HTTP, for the whole session."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield S3Server(host, port)
    finally:
        server.stop()


@dataclass
class Archive:
    """One fresh bucket on the test server, public-read like the real archive."""

    server: S3Server
    bucket: str
    client_env: dict[str, str] = field(default_factory=dict)
    admin_env: dict[str, str] = field(default_factory=dict)

    @property
    def minio(self):
        return self.server.minio()

    def put(self, key: str, data: bytes, metadata: Mapping[str, str] | None = None) -> None:
        self.minio.put_object(self.bucket, key, io.BytesIO(data), len(data), metadata=dict(metadata or {}))

    def get(self, key: str) -> bytes:
        response = self.minio.get_object(self.bucket, key)
        try:
            return response.read()
        finally:
            response.close()
            response.release_conn()

    def remove(self, key: str) -> None:
        self.minio.remove_object(self.bucket, key)

    def keys(self, prefix: str = "") -> list[str]:
        return sorted(
            o.object_name for o in self.minio.list_objects(self.bucket, prefix=prefix, recursive=True)
        )

    def publish(
        self, dataset: str, revision: str, files: Mapping[str, bytes], *, manifest: bytes | None = None
    ) -> None:
        """Store a revision the way the archive holds it: data objects, then the manifest."""
        for subpath, data in files.items():
            self.put(f"{dataset}/{revision}/{subpath}", data, {"sha256": sha256(data)})
        self.put(
            f"{dataset}/{revision}/djarchive-manifest.csv",
            manifest_bytes(files) if manifest is None else manifest,
        )


@pytest.fixture
def archive(s3_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> Archive:
    """A fresh public-read bucket; the environment points the client (anonymous) and admin at it."""
    bucket = f"test-{uuid.uuid4().hex[:16]}"
    minio = s3_server.minio()
    minio.make_bucket(bucket)
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"AWS": ["*"]},
                "Action": ["s3:GetObject", "s3:ListBucket", "s3:GetBucketLocation"],
                "Resource": [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"],
            }
        ],
    }
    minio.set_bucket_policy(bucket, json.dumps(policy))
    client_env = {"DJARCHIVE_CLIENT_ENDPOINT": s3_server.url, "DJARCHIVE_CLIENT_BUCKET": bucket}
    admin_env = {
        "DJARCHIVE_ADMIN_ENDPOINT": s3_server.url,
        "DJARCHIVE_ADMIN_BUCKET": bucket,
        "DJARCHIVE_ADMIN_ACCESS_KEY": ADMIN_ACCESS_KEY,
        "DJARCHIVE_ADMIN_SECRET_KEY": ADMIN_SECRET_KEY,
    }
    for name, value in {**client_env, **admin_env}.items():
        monkeypatch.setenv(name, value)
    return Archive(s3_server, bucket, client_env, admin_env)


@pytest.fixture
def make_mirror(tmp_path: Path) -> Iterator[Callable[..., StaticMirror]]:
    """A factory of started static mirrors (``http.server`` over a folder, recording requests);
    all stopped after the test."""
    started: list[StaticMirror] = []

    def make(root: Path | None = None, *, ranges: bool = False) -> StaticMirror:
        mirror = StaticMirror(root or tmp_path / f"mirror{len(started)}", ranges=ranges).start()
        started.append(mirror)
        return mirror

    yield make
    for mirror in started:
        mirror.stop()


def closed_port() -> int:
    """A 127.0.0.1 port nothing listens on (connections to it are refused)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


SEED_FILES = {
    "root.dat": os.urandom(1000),
    "root2.dat": os.urandom(2048),
    "sub/sub.dat": os.urandom(4096),
    "sub/dir/dir.dat": os.urandom(524288),
    "sub/other/other.dat": b"",
    'names/with space/ünïcödé, "quoted".bin': b"non-ascii name\n",
}


@pytest.fixture
def seed_files() -> dict[str, bytes]:
    """A small revision shaped like the original tool's test set, plus awkward names and an empty file."""
    return dict(SEED_FILES)
