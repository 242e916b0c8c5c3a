"""The S3 servers the tests run against, chosen by ``DJARCHIVE_TEST_SERVER``; the benchmarks start
s3rver through this module too.

``moto`` (the default)
    moto's ``ThreadedMotoServer`` in the test process: honours conditional writes, keeps the
    checksums it is sent without checking them.
``s3rver``
    s3rver 3.7.1 (Node, from the npm registry) in its own process: ignores ``If-None-Match`` and
    ``If-Match``, checks no digest, keeps no checksum, accepts only the key pairs it is given at
    start-up (and its own, S3RVER/S3RVER).
    Install it once with ``npm install --prefix .s3rver s3rver@3.7.1`` at the repository's root
    (``tox -e py311-s3rver`` does); ``DJARCHIVE_TEST_S3RVER`` names another install prefix.
``external``
    a server of your own (MinIO, Ceph RGW, AWS): ``DJARCHIVE_TEST_S3_ENDPOINT``
    (``http(s)://host:port``), ``DJARCHIVE_TEST_S3_ACCESS_KEY``, ``DJARCHIVE_TEST_S3_SECRET_KEY``
    and ``DJARCHIVE_TEST_S3_BUCKET_PREFIX`` (default ``djarchive-test-``): every test creates a
    bucket under that prefix and deletes it afterwards, so the keys need bucket rights.

s3rver needs two things at start-up that :func:`start_s3rver` does: ``NODE_OPTIONS`` with
``--openssl-legacy-provider`` (its listing continuation tokens use DES, which Node 17+ refuses
otherwise: every listing past 1,000 keys fails with 500), and a replacement of its filesystem
store's ``listObjects`` (``s3rver_start.js``: '/'-delimited listings miss folders without a
direct object, and pages follow folder order instead of S3's key order).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

__all__ = [
    "S3RVER_KEY",
    "S3RVER_VERSION",
    "ServerError",
    "ServerSpec",
    "find_s3rver",
    "install_s3rver",
    "server_spec",
    "start_s3rver",
]

ROOT = Path(__file__).resolve().parent.parent
LAUNCHER = Path(__file__).resolve().parent / "s3rver_start.js"
S3RVER_VERSION = "3.7.1"
S3RVER_KEY = "S3RVER"  # its own access key, and its secret
TEST_KEYS = ("djarchive-test-admin", "s3cr3t-Adm1n-K3y-never-printed")  # distinctive: never printed
CLIENT_TEST_KEYS = ("djarchive-test-client", "s3cr3t-Cl1ent-K3y-never-printed")  # tests of a client's keys
KINDS = ("moto", "s3rver", "external")


class ServerError(RuntimeError):
    """A test server could not be found or started."""


@dataclass(frozen=True)
class ServerSpec:
    """Which server the tests use, and how to reach it (``endpoint`` for an external one)."""

    kind: str
    access_key: str
    secret_key: str
    client_keys: tuple[str, str]  # a second pair (the same on an external server)
    endpoint: str = ""  # host:port, external servers only
    secure: bool = False
    bucket_prefix: str = "test-"

    @property
    def conditional_writes(self) -> bool:
        """Whether the server is known to honour If-None-Match and If-Match (external: probed)."""
        return self.kind != "s3rver"


def server_spec(environ: dict[str, str] | os._Environ[str] | None = None) -> ServerSpec:
    """The server named by ``DJARCHIVE_TEST_SERVER`` and its settings; ServerError when they are
    incomplete, so that a misconfigured run fails at once instead of testing moto silently."""
    env = os.environ if environ is None else environ
    kind = env.get("DJARCHIVE_TEST_SERVER", "moto").strip().lower() or "moto"
    if kind not in KINDS:
        raise ServerError(f"DJARCHIVE_TEST_SERVER={kind!r}: use one of {', '.join(KINDS)}")
    if kind in ("moto", "s3rver"):  # moto takes any keys; the fixture gives these to s3rver
        return ServerSpec(kind, *TEST_KEYS, CLIENT_TEST_KEYS)
    needed = ("DJARCHIVE_TEST_S3_ENDPOINT", "DJARCHIVE_TEST_S3_ACCESS_KEY", "DJARCHIVE_TEST_S3_SECRET_KEY")
    missing = [name for name in needed if not env.get(name)]
    if missing:
        raise ServerError(f"DJARCHIVE_TEST_SERVER=external needs {', '.join(missing)}")
    url = env["DJARCHIVE_TEST_S3_ENDPOINT"]
    parts = urlsplit(url if "://" in url else f"http://{url}")
    keys = (env["DJARCHIVE_TEST_S3_ACCESS_KEY"], env["DJARCHIVE_TEST_S3_SECRET_KEY"])
    return ServerSpec(
        kind,
        *keys,
        keys,
        endpoint=parts.netloc,
        secure=parts.scheme == "https",
        bucket_prefix=env.get("DJARCHIVE_TEST_S3_BUCKET_PREFIX") or "djarchive-test-",
    )


def s3rver_prefix() -> Path:
    """Where s3rver is installed: ``DJARCHIVE_TEST_S3RVER``, else ``.s3rver`` at the repository's root."""
    return Path(os.environ.get("DJARCHIVE_TEST_S3RVER") or ROOT / ".s3rver")


def find_s3rver(prefix: Path | None = None) -> Path | None:
    """The s3rver package folder under ``prefix`` when it holds version 3.7.1, else None."""
    import json

    package = (prefix or s3rver_prefix()) / "node_modules" / "s3rver"
    try:
        version = json.loads((package / "package.json").read_text())["version"]
    except (OSError, ValueError, KeyError):
        return None
    return package if version == S3RVER_VERSION else None


def install_s3rver(prefix: Path | None = None, *, attempts: int = 3, seconds: float = 120) -> Path:
    """``npm install --prefix PREFIX s3rver@3.7.1`` unless it is there (``attempts`` tries of at most
    ``seconds`` each); ServerError without npm, or when every try failed."""
    prefix = prefix or s3rver_prefix()
    found = find_s3rver(prefix)
    if found is not None:
        return found
    npm = shutil.which("npm")
    if npm is None:
        raise ServerError("npm is not installed: s3rver needs Node.js and npm")
    prefix.mkdir(parents=True, exist_ok=True)
    command = [npm, "install", "--no-audit", "--no-fund", "--prefix", str(prefix), f"s3rver@{S3RVER_VERSION}"]
    # npm stalls rather than fails when it cannot verify the registry's certificate (behind a proxy
    # with its own CA, NODE_EXTRA_CA_CERTS must reach it: tox passes it) or when the registry stops
    # answering (16 minutes once in a CI run): each try has a time limit, and is made again.
    failure = ""
    for _ in range(attempts):
        try:
            result = subprocess.run(command, capture_output=True, text=True, timeout=seconds)
        except subprocess.TimeoutExpired:
            failure = f"no answer in {seconds:.0f} s"
            continue
        found = find_s3rver(prefix)
        if result.returncode == 0 and found is not None:
            return found
        failure = result.stderr.strip()[-500:]
    raise ServerError(f"{' '.join(command)} failed {attempts} times: {failure}")


def start_s3rver(
    directory: Path,
    *,
    prefix: Path | None = None,
    buckets: tuple[str, ...] = (),
    keys: dict[str, str] | None = None,
    log: Path | None = None,
) -> tuple[subprocess.Popen[str], int]:
    """Start s3rver on 127.0.0.1, a free port, storing under ``directory`` and with ``buckets``
    created, accepting the key pairs ``keys`` (access key -> secret) besides S3RVER/S3RVER; return
    the process and its port once it listens. Stop it with ``terminate()``."""
    prefix = prefix or s3rver_prefix()
    if find_s3rver(prefix) is None:
        raise ServerError(
            f"s3rver {S3RVER_VERSION} is not installed under {prefix}: "
            f"npm install --prefix {prefix} s3rver@{S3RVER_VERSION}"
        )
    node = shutil.which("node")
    if node is None:
        raise ServerError("node is not installed: s3rver needs Node.js")
    env = dict(os.environ)
    options = env.get("NODE_OPTIONS", "")
    if "--openssl-legacy-provider" not in options:
        env["NODE_OPTIONS"] = f"{options} --openssl-legacy-provider".strip()
    env["S3RVER_KEY_PAIRS"] = "\n".join(f"{access}:{secret}" for access, secret in (keys or {}).items())
    directory.mkdir(parents=True, exist_ok=True)
    errors = open(log, "w") if log is not None else subprocess.DEVNULL  # noqa: SIM115 - the child keeps it
    try:
        process = subprocess.Popen(
            [node, str(LAUNCHER), str(prefix), str(directory), "127.0.0.1", "0", *buckets],
            stdout=subprocess.PIPE,
            stderr=errors,
            text=True,
            env=env,
        )
    finally:
        if log is not None:
            errors.close()  # type: ignore[union-attr]
    line = process.stdout.readline() if process.stdout else ""
    if not line.startswith("listening on "):
        process.kill()
        process.wait()
        where = f" (see {log})" if log is not None else ""
        raise ServerError(f"s3rver did not start{where}: {line.strip() or 'no output'}")
    return process, int(line.strip().rpartition(":")[2])


if __name__ == "__main__":  # `python -m tests.s3servers`: install s3rver where the tests look for it
    print(install_s3rver())
