"""Local S3 servers for the benchmark, each in its own process: s3rver (npm) and moto_server (PyPI).

Both listen on 127.0.0.1 on a free port and use the credentials S3RVER/S3RVER (s3rver's own;
moto accepts anything). s3rver is installed and started as the tests do it
(``tests/s3servers.py``: version 3.7.1, Node's legacy OpenSSL provider, a correct listObjects),
here into benchmarks/.work. :class:`LatencyProxy` puts ``latency_proxy.py`` in front of a server.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
WORK = HERE / ".work"
sys.path.insert(0, str(HERE.parent))  # the repository's root: tests.s3servers

from tests import s3servers  # noqa: E402

ACCESS_KEY = "S3RVER"
SECRET_KEY = "S3RVER"
BUCKET = "djarchive-bench"


class ServerError(RuntimeError):
    """A server could not be started."""


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, process: subprocess.Popen, what: str, timeout: float = 30.0) -> None:
    """Wait until something accepts connections on ``port``; raise if ``process`` dies first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ServerError(f"{what} exited with status {process.returncode} before listening")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise ServerError(f"{what} did not listen on port {port} within {timeout:.0f} s")


def find_s3rver(work: Path = WORK) -> str | None:
    """The s3rver package folder in benchmarks/.work (``npm install --prefix``), if it is there."""
    found = s3servers.find_s3rver(work)
    return str(found) if found is not None else None


def install_s3rver(work: Path = WORK) -> str | None:
    """Install s3rver 3.7.1 into benchmarks/.work (once); return its folder, or None without npm."""
    try:
        return str(s3servers.install_s3rver(work))
    except s3servers.ServerError as error:
        print(error, file=sys.stderr)
        return None


class Server:
    """A running local S3 server (a context manager that stops it)."""

    name = "server"

    def __init__(self) -> None:
        self.process: subprocess.Popen | None = None
        self.port = 0
        self.log_path: Path | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        return self.process.pid if self.process else 0

    def start(self) -> Server:
        raise NotImplementedError

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process is not None and self.process.stdout is not None:
            self.process.stdout.close()
        self.process = None

    def __enter__(self) -> Server:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def make_bucket(self) -> None:
        from minio import Minio

        client = Minio(f"127.0.0.1:{self.port}", access_key=ACCESS_KEY, secret_key=SECRET_KEY, secure=False)
        if not client.bucket_exists(BUCKET):
            client.make_bucket(BUCKET)


class S3rver(Server):
    """The npm ``s3rver`` (Node), files on disk under benchmarks/.work/s3rver."""

    name = "s3rver"

    def __init__(self, work: Path = WORK):
        super().__init__()
        self.work = work
        self.executable = find_s3rver(work) or install_s3rver(work)

    def start(self) -> S3rver:
        if not self.executable:
            raise ServerError("s3rver not found: install Node.js and npm (then `npm install s3rver`)")
        data = self.work / "s3rver"
        if data.exists():
            shutil.rmtree(data)
        self.log_path = self.work / "logs" / "s3rver.log"
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.process, self.port = s3servers.start_s3rver(
                data, prefix=self.work, buckets=(BUCKET,), log=self.log_path
            )
        except s3servers.ServerError as error:
            raise ServerError(str(error)) from None
        return self

    def version(self) -> str:
        if not self.executable:
            return "not installed"
        return f"s3rver {s3servers.S3RVER_VERSION} on Node {_node_version()}"


class Moto(Server):
    """``moto_server`` from moto[server], as a subprocess (its own GIL)."""

    name = "moto"

    def start(self) -> Moto:
        executable = shutil.which("moto_server") or str(Path(sys.executable).with_name("moto_server"))
        if not Path(executable).is_file():
            raise ServerError("moto_server not found: pip install 'moto[server]'")
        self.port = free_port()
        self.log_path = WORK / "logs" / "moto.log"
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                [executable, "-H", "127.0.0.1", "-p", str(self.port)], stdout=log, stderr=subprocess.STDOUT
            )
        wait_for_port(self.port, self.process, "moto_server")
        self.make_bucket()
        return self

    def version(self) -> str:
        from importlib.metadata import version

        return f"moto {version('moto')}"


class LatencyProxy:
    """``latency_proxy.py`` in its own process, forwarding to ``target_port`` with ``delay`` each way
    (and ``rate``, the bandwidth of the whole proxy, when given)."""

    def __init__(self, target_port: int, delay: float, max_buffer: int = 2 * 1024 * 1024, rate: float = 0.0):
        self.target_port = target_port
        self.delay = delay
        self.max_buffer = max_buffer
        self.rate = rate  # bytes per second of the whole proxy, each direction (0: no limit)
        self.process: subprocess.Popen | None = None
        self.port = 0

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> LatencyProxy:
        self.process = subprocess.Popen(
            [
                sys.executable,
                str(HERE / "latency_proxy.py"),
                "--target",
                f"127.0.0.1:{self.target_port}",
                "--delay",
                str(self.delay),
                "--max-buffer",
                str(self.max_buffer),
                "--rate",
                str(self.rate),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        line = self.process.stdout.readline() if self.process.stdout else ""
        if not line.startswith("listening on "):
            self.__exit__()
            raise ServerError(f"the latency proxy did not start: {line!r}")
        self.port = int(line.strip().rpartition(":")[2])
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)
        self.process = None


def _node_version() -> str:
    node = shutil.which("node")
    if not node:
        return "?"
    return subprocess.run([node, "--version"], capture_output=True, text=True).stdout.strip()
