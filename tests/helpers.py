"""Plain helpers for the tests (fixtures live in conftest.py)."""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from types import ModuleType


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def manifest_bytes(files: Mapping[str, bytes]) -> bytes:
    """The manifest of ``files``, written independently of the code under test."""
    lines = []
    for subpath in sorted(files):
        quoted = subpath.replace('"', '""')
        lines.append(f'"{len(files[subpath])}","{sha256(files[subpath])}","{quoted}"\n')
    return "".join(lines).encode("utf-8")


@contextlib.contextmanager
def never_waits(what: str, seconds: int = 20) -> Iterator[None]:
    """Fail (not hang) when the code under the block blocks for ``seconds``, as it would opening a
    named pipe with no writer: SIGALRM interrupts the call (POSIX, main thread only)."""
    import signal

    import pytest

    def waited(*_: object) -> None:
        pytest.fail(f"{what} waited {seconds} s (on a named pipe?)")

    previous = signal.signal(signal.SIGALRM, waited)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


@contextlib.contextmanager
def s3_error_server(status: int, code: str, message: str) -> Iterator[str]:
    """A server on 127.0.0.1 that answers every request with one S3 error (``message`` is XML
    text: character references stay as they are); yields its URL."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    body = (
        f'<?xml version="1.0" encoding="UTF-8"?><Error><Code>{code}</Code><Message>{message}</Message>'
        "<RequestId>1</RequestId></Error>"
    ).encode()

    class Answer(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "application/xml")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_HEAD = do_PUT = do_GET

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Answer)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def run_module(
    module: str, *args: str, env: Mapping[str, str] | None = None, cwd: Path | None = None, **kwargs
):
    """Run ``python -m module args`` in a subprocess with this interpreter."""
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        env={**os.environ, **(env or {})},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=kwargs.pop("timeout", 120),
        **kwargs,
    )


def write_tree(root: Path, files: Mapping[str, bytes]) -> Path:
    """Create ``root`` holding ``files`` (posix subpath -> content); return it."""
    root.mkdir(parents=True, exist_ok=True)
    for subpath, data in files.items():
        path = root.joinpath(*subpath.split("/"))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return root


def read_tree(root: Path) -> dict[str, bytes]:
    """Every regular file under ``root`` (posix subpath -> content); djarchive's own folder
    (temporary files included) and symbolic links are left out."""
    found = {}
    for path in sorted(root.rglob("*")):
        relative = path.relative_to(root)
        if relative.parts[0] == ".djarchive":
            continue
        if path.is_file() and not path.is_symlink():
            found[relative.as_posix()] = path.read_bytes()
    return found


def part_files(root: Path) -> list[Path]:
    """djarchive's temporary download files under ``root`` (in TARGET/.djarchive/tmp/<run>/)."""
    folder = root / ".djarchive" / "tmp"
    return sorted(path for path in folder.rglob("*") if path.is_file()) if folder.is_dir() else []


def rendered_man_page(page: Path) -> str | None:
    """The page as ``man`` renders it, whitespace collapsed, or None where man is missing."""
    if not shutil.which("man"):
        return None
    wide = {**os.environ, "MANWIDTH": "400"}  # no line breaks inside the phrases looked for
    result = subprocess.run(["man", "-l", str(page)], capture_output=True, text=True, check=True, env=wide)
    assert result.stderr == ""
    return " ".join(result.stdout.split())


def overlapping_calls(
    monkeypatch,
    owner: object,
    name: str,
    size_of: Callable[..., int],
    want: Callable[[int], tuple[str, int]],
    sizes: Iterable[int],
) -> list[list[int]]:
    """Patch ``owner.name`` so that each call, as it starts, records the sizes (``size_of(*args)``)
    of every call then running, then waits (on a condition, not a clock) until the calls of its
    group running at once reach the most the group should allow, or all that are left of it.

    ``want(size)`` gives a call's group and that most; ``sizes`` are the sizes of every call to
    come. So the most concurrent calls the code under test permits is reached every time, and
    any more than that is seen. A code path that allows fewer makes the waits time out (10 s)
    and the snapshots show it. Returns the snapshots."""
    condition, active, seen = threading.Condition(), [], []
    left = Counter(want(size)[0] for size in sizes)
    original = getattr(owner, name)

    def running(group: str) -> int:
        return sum(want(size)[0] == group for size in active)

    def spy(*args, **kwargs):
        size = size_of(*args, **kwargs)
        group, most = want(size)
        with condition:
            active.append(size)
            seen.append(sorted(active))
            condition.notify_all()
            condition.wait_for(lambda: running(group) >= min(most, left[group]), timeout=10)
        try:
            return original(*args, **kwargs)
        finally:
            with condition:
                active.remove(size)
                left[group] -= 1
                condition.notify_all()

    monkeypatch.setattr(owner, name, spy)
    return seen


def most_at_once(seen: list[list[int]], small: int = 256 * 1024) -> dict[str, int]:
    """The most transfers of small (<= ``small`` bytes) and of large sizes running at once."""
    return {
        "small": max((sum(size <= small for size in sizes) for sizes in seen), default=0),
        "large": max((sum(size > small for size in sizes) for sizes in seen), default=0),
    }


def bash_complete(script: Path, function: str, line: str) -> list[str]:
    """What the completion ``function`` of ``script`` offers for the command ``line`` typed so far
    (the cursor at its end), given the variables bash sets: COMP_LINE, COMP_POINT, and COMP_WORDS
    split as bash splits them, at blanks and at the word breaks ':' and '='."""
    import re
    import shlex

    words = [word for word in re.split(r"\s+|([:=])", line) if word]
    if not line or line[-1].isspace():
        words.append("")
    shell = (
        f"source {shlex.quote(str(script))}; COMP_LINE={shlex.quote(line)}; COMP_POINT=${{#COMP_LINE}}; "
        f"COMP_WORDS=({' '.join(shlex.quote(word) for word in words)}); COMP_CWORD={len(words) - 1}; "
        f'{function}; printf "%s\\n" "${{COMPREPLY[@]}}"'
    )
    result = subprocess.run(["bash", "-c", shell], capture_output=True, text=True, check=True)
    return result.stdout.split()


def bulk_transport() -> str:
    """The transport of bulk bodies in this run ("curl" or "minio"; DJARCHIVE_TRANSPORT forces one)."""
    from djarchive_common.transport import bulk_transport as chosen

    return chosen()


def spy_gets(monkeypatch, *, skip: tuple[str, ...] = (".csv", ".sig", ".json")) -> list[tuple[str, int, int]]:
    """Record the GETs of data objects as (key, offset, length; 0: to the end), whichever transport
    carries them: the store's streams (minio) or the requests handed to libcurl's engine. Keys
    ending in ``skip`` (manifests, signatures, leases) are left out."""
    from djarchive_common.curl import CurlEngine, Get
    from djarchive_common.store import Store

    gets: list[tuple[str, int, int]] = []
    stream, run = Store.stream, CurlEngine.run

    def spy_stream(store, key, offset=0, length=0, **options):
        if not key.endswith(skip):
            gets.append((key, offset, length))
        return stream(store, key, offset, length, **options)

    def spy_run(engine, requests):
        def recorded():
            for request in requests:
                if isinstance(request, Get) and not request.key.endswith(skip):
                    gets.append((request.key, request.offset, request.length))
                yield request

        return run(engine, recorded())

    monkeypatch.setattr(Store, "stream", spy_stream)
    monkeypatch.setattr(CurlEngine, "run", spy_run)
    return gets


def engine_in_flight(monkeypatch, size_of: Callable[[object], int]) -> list[list[int]]:
    """Record, each time libcurl's engine starts a GET, the sizes (``size_of(request)``) of every
    GET then in flight (started, not yet ended): snapshots as :func:`overlapping_calls` takes."""
    from djarchive_common.curl import CurlEngine, Get

    run, seen = CurlEngine.run, []

    def spy_run(engine, requests):
        flying: dict[int, int] = {}

        def started():
            for request in requests:
                if isinstance(request, Get):
                    flying[id(request)] = size_of(request)
                    seen.append(sorted(flying.values()))
                yield request

        for done in run(engine, started()):
            flying.pop(id(done.request), None)
            yield done

    monkeypatch.setattr(CurlEngine, "run", spy_run)
    return seen


@contextlib.contextmanager
def iam_moto_server(log: Path) -> Iterator[str]:
    """moto_server in its own process (its URL), IAM enforcement off until :func:`enforce_iam`:
    the test sets up users, policies and buckets first."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with log.open("w") as output:
        server = subprocess.Popen(
            [str(Path(sys.executable).with_name("moto_server")), "-H", "127.0.0.1", "-p", str(port)],
            stdout=output,
            stderr=subprocess.STDOUT,
            env={**os.environ, "INITIAL_NO_AUTH_ACTION_COUNT": "inf"},
        )
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    urllib.request.urlopen(f"{url}/moto-api/", timeout=1).close()
                    break
                except OSError:
                    assert server.poll() is None, "moto_server exited"
                    assert time.monotonic() < deadline, "moto_server did not start"
                    time.sleep(0.05)
            yield url
        finally:
            server.terminate()
            server.wait(timeout=10)


def enforce_iam(url: str) -> None:
    """From now on the moto_server at ``url`` authenticates and authorizes every request."""
    request = urllib.request.Request(
        f"{url}/moto-api/reset-auth", data=b"0", method="POST", headers={"Content-Type": "text/plain"}
    )
    urllib.request.urlopen(request, timeout=5).close()


RAW_CONTROLS = ("\x1b", "\x07", "\r", "\u202e")  # what must never reach a terminal raw


def assert_safe(*texts: str) -> None:
    """No raw escape, bell, carriage return or bidi override in ``texts``."""
    for text in texts:
        assert not any(char in text for char in RAW_CONTROLS), text


def run_client(capsys, *argv: str) -> tuple[int, str, str]:
    """``djarchive ARGV`` in this process: its exit code, standard output and standard error."""
    from djarchive_client.cli import main

    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def run_admin(capsys, *argv: str) -> tuple[int, str, str]:
    """``djarchive-admin ARGV`` in this process: its exit code, standard output and standard error."""
    from djarchive_admin.cli import main

    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def load_script(path: Path, name: str) -> ModuleType:
    """A script of the repository (not a package module) imported from its path, as ``name``."""
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses looks the module up while a class is made
    spec.loader.exec_module(module)
    return module
