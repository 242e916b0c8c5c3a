"""Shared fixtures: configuration isolation and a real S3 server on 127.0.0.1: moto, or the one
``DJARCHIVE_TEST_SERVER`` names (s3rver, or an external server; see tests/s3servers.py)."""

from __future__ import annotations

import io
import json
import logging
import os
import sys
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

import pytest

from tests.helpers import manifest_bytes, sha256
from tests.mirror_server import StaticMirror
from tests.s3servers import ServerSpec, server_spec, start_s3rver

SERVER = server_spec()  # read once, before any test drops the DJARCHIVE_* variables
ADMIN_ACCESS_KEY = SERVER.access_key
ADMIN_SECRET_KEY = SERVER.secret_key
CLIENT_ACCESS_KEY, CLIENT_SECRET_KEY = SERVER.client_keys  # for tests of a client with credentials
OWN_LOGGERS = ("djarchive_common", "djarchive_client", "djarchive_admin", "minio", "urllib3")


def _version(distribution: str) -> str:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "not installed"


def pytest_report_header(config: pytest.Config) -> list[str]:
    names = ("datajoint", "minio", "moto", "urllib3", "djarchive-client", "djarchive-admin")
    where = SERVER.kind + (f" at {SERVER.endpoint}" if SERVER.endpoint else "")
    return ["versions: " + ", ".join(f"{name} {_version(name)}" for name in names), f"S3 server: {where}"]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Every test under tests/faults is slow (proxies, subprocesses, kills): ``-m 'not slow'``
    leaves them out. Against another server than moto, only the tests that talk to the S3 server
    run (the others do not depend on it, and the moto run has them)."""
    faults = Path(__file__).parent / "faults"
    for item in items:
        if faults in item.path.parents:
            item.add_marker(pytest.mark.slow)
    if SERVER.kind != "moto":
        kept = [item for item in items if "s3_server" in getattr(item, "fixturenames", ())]
        config.hook.pytest_deselected(items=[item for item in items if item not in kept])
        items[:] = kept


@pytest.fixture(autouse=True)
def isolated_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Run every test in an empty working directory and home, with no DJ_*/DJARCHIVE_* variables,
    so a developer's own datajoint.json or environment is never read; restore logging, and
    datajoint 0.x's ``custom`` section (read from the working folder when datajoint is first
    imported, by whichever test that is), after."""
    custom = _datajoint_custom()
    before = dict(custom) if custom is not None else {}
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
    custom = _datajoint_custom()
    if custom is not None and dict(custom) != before:
        custom.clear()
        custom.update(before)


def _datajoint_custom() -> dict | None:
    """datajoint 0.x's in-process ``custom`` section, when datajoint is imported (2.x has none)."""
    module = sys.modules.get("datajoint")
    config = getattr(module, "config", None)
    try:
        custom = config["custom"] if config is not None else None
    except (KeyError, TypeError):
        return None
    return custom if isinstance(custom, dict) else None


@dataclass
class S3Server:
    """A running S3 endpoint: on 127.0.0.1 (moto, s3rver), or an external one."""

    host: str
    port: int
    kind: str = "moto"
    secure: bool = False
    access_key: str = ADMIN_ACCESS_KEY
    secret_key: str = ADMIN_SECRET_KEY
    bucket_prefix: str = "test-"
    conditional_writes: bool | None = True  # honours If-None-Match/If-Match (external: probed)

    @property
    def endpoint(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def url(self) -> str:
        return f"{'https' if self.secure else 'http'}://{self.endpoint}"

    def minio(self, access_key: str | None = None, secret_key: str | None = None):
        from minio import Minio

        return Minio(
            self.endpoint,
            access_key=access_key or self.access_key,
            secret_key=secret_key or self.secret_key,
            secure=self.secure,
        )


def _moto() -> Iterator[S3Server]:
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield S3Server(host, port)
    finally:
        server.stop()


def _s3rver(folder: Path) -> Iterator[S3Server]:
    keys = {ADMIN_ACCESS_KEY: ADMIN_SECRET_KEY, CLIENT_ACCESS_KEY: CLIENT_SECRET_KEY}
    process, port = start_s3rver(folder / "data", keys=keys, log=folder / "s3rver.log")
    try:
        yield S3Server("127.0.0.1", port, kind="s3rver", conditional_writes=False)
    finally:
        process.terminate()
        process.wait(10)
        if process.stdout is not None:
            process.stdout.close()


def _external(spec: ServerSpec) -> Iterator[S3Server]:
    host, _, port = spec.endpoint.rpartition(":")
    if not port.isdigit():
        host, port = spec.endpoint, "443" if spec.secure else "80"
    yield S3Server(
        host,
        int(port),
        "external",
        spec.secure,
        spec.access_key,
        spec.secret_key,
        spec.bucket_prefix,
        conditional_writes=None,
    )


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """The session's S3 server (see tests/s3servers.py): moto's ThreadedMotoServer on a free port by
    default; s3rver in a Node process, or an external server, as ``DJARCHIVE_TEST_SERVER`` says."""
    if SERVER.kind == "s3rver":
        yield from _s3rver(tmp_path_factory.mktemp("s3rver"))
    elif SERVER.kind == "external":
        yield from _external(SERVER)
    else:
        yield from _moto()


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


def _public_read(minio, bucket: str) -> bool:
    """Make ``bucket`` readable by anyone, as the real archive is; False where the server has no
    bucket policies (s3rver lets anonymous requests through anyway) or refuses public ones (AWS)."""
    from minio.error import S3Error

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
    try:
        minio.set_bucket_policy(bucket, json.dumps(policy))
    except S3Error:
        return False
    return True


def _delete_bucket(minio, bucket: str) -> None:
    """Empty and delete a bucket of an external server: its objects in batches, or one by one where
    a batch fails (s3rver's multi-object delete can fail on keys that share a folder)."""
    from minio.deleteobjects import DeleteObject
    from minio.error import S3Error

    names = [o.object_name for o in minio.list_objects(bucket, recursive=True)]
    for start in range(0, len(names), 1000):
        batch = names[start : start + 1000]
        try:
            errors = list(minio.remove_objects(bucket, [DeleteObject(name) for name in batch]))
        except S3Error:
            errors = batch
        for _ in errors[:1]:
            for name in batch:
                minio.remove_object(bucket, name)
    minio.remove_bucket(bucket)


def _probe_conditional_writes(server: S3Server, bucket: str) -> bool:
    """Whether an external server honours conditional writes, as the admin's probe finds out (True
    where djarchive-admin is not installed: no test writes then)."""
    try:
        from djarchive_admin.probe import probe
    except ImportError:
        return True
    from djarchive_common.config import resolve_settings
    from djarchive_common.store import Store

    settings = resolve_settings(
        "admin",
        endpoint=server.url,
        bucket=bucket,
        access_key=server.access_key,
        secret_key=server.secret_key,
    )
    return probe(Store(settings)).conditional_writes


@pytest.fixture
def archive(s3_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> Iterator[Archive]:
    """A fresh public-read bucket; the environment points the client (anonymous) and admin at it.
    On a server that ignores conditional writes, the admin is declared the only writer
    (``DJARCHIVE_ADMIN_SINGLE_WRITER=1``), as a curator there must; the tests of that refusal
    remove it."""
    bucket = f"{s3_server.bucket_prefix}{uuid.uuid4().hex[:16]}"
    minio = s3_server.minio()
    minio.make_bucket(bucket)
    public = s3_server.kind == "s3rver" or _public_read(minio, bucket)
    client_env = {"DJARCHIVE_CLIENT_ENDPOINT": s3_server.url, "DJARCHIVE_CLIENT_BUCKET": bucket}
    if not public:  # the client reads with the admin's keys instead of anonymously
        client_env["DJARCHIVE_CLIENT_ACCESS_KEY"] = s3_server.access_key
        client_env["DJARCHIVE_CLIENT_SECRET_KEY"] = s3_server.secret_key
    admin_env = {
        "DJARCHIVE_ADMIN_ENDPOINT": s3_server.url,
        "DJARCHIVE_ADMIN_BUCKET": bucket,
        "DJARCHIVE_ADMIN_ACCESS_KEY": s3_server.access_key,
        "DJARCHIVE_ADMIN_SECRET_KEY": s3_server.secret_key,
    }
    if s3_server.conditional_writes is None:
        s3_server.conditional_writes = _probe_conditional_writes(s3_server, bucket)
    if not s3_server.conditional_writes:
        admin_env["DJARCHIVE_ADMIN_SINGLE_WRITER"] = "1"
    for name, value in {**client_env, **admin_env}.items():
        monkeypatch.setenv(name, value)
    yield Archive(s3_server, bucket, client_env, admin_env)
    if s3_server.kind == "external":
        _delete_bucket(minio, bucket)


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
