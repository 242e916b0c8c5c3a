"""The libcurl engine (djarchive_common.curl) against minio-py and s5cmd on s3rver, in one run.

    python benchmarks/curl_probe.py [--repeat 3] [--small 2000] [--large-mib 256]

Starts s3rver (benchmarks/servers.py), uploads S (``--small`` objects of 16 KiB) and L (4 objects
of ``--large-mib`` MiB) with the engine's PUTs (each with its real sha256), then downloads each
shape into a fresh folder with every tool, each in its own process (imports included), and
prints the wall time and the client CPU (user + system of that process, from wait4):

* ``curl``: the manifest read through minio (as the client does), then every object through
  one thread driving libcurl's multi interface, 32 transfers at once, each body hashed and
  written as it arrives, checked, and renamed into place (L: one stream per file, or
  ``curl-ranges``: 64 MiB byte ranges written at their offsets, hashed from memory at the
  cursor and read back only ahead of it, as fetch.py does; ``curl-2``: the files shared out to
  two engines, each driven by its own thread);
* ``minio32``: the same with minio-py and 32 threads (L: not run);
* ``s5cmd``: ``s5cmd cp 's3://bucket/S/*' DEST/`` then hashcheck.py (hashlib, one thread per core).

The ratios are against s5cmd + hashcheck, the floor of issue 27.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import servers  # noqa: E402

KiB, MiB = 1024, 1024 * 1024
PART = 64 * MiB


def _settings(endpoint: str):
    from djarchive_common.config import resolve_settings

    return resolve_settings(
        "admin",
        endpoint=endpoint,
        bucket=servers.BUCKET,
        access_key=servers.ACCESS_KEY,
        secret_key=servers.SECRET_KEY,
    )


def _manifest(endpoint: str, prefix: str) -> list[tuple[int, str, str]]:
    """The shape's manifest, read from the store through minio as the client reads one."""
    from djarchive_common.store import Store

    store = Store(_settings(endpoint))
    text = store.read(f"{prefix}/manifest.csv", 64 * MiB).decode()
    return [(int(size), sha, path) for size, sha, path in csv.reader(text.splitlines())]


# -- the tools, each run in its own process ----------------------------------------------


class _WholeFile:
    """One object streamed into a temporary file, hashed as it arrives. The file is created by a
    helper thread while the request is under way (file system latency stays off the driver)."""

    def __init__(self, dest: Path, size: int, sha: str, path: str, helpers=None):
        self.size, self.sha, self.final = size, sha, dest / path
        self.temp = dest / f".{path}.part"
        self.fd = -1
        self.digest = hashlib.sha256()
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
        self.opening = helpers.submit(os.open, self.temp, flags, 0o644) if helpers else None

    def on_head(self, head) -> None:
        from djarchive_common.errors import TransferError

        if head.object_size != self.size:
            raise TransferError(f"{self.final}: {head.object_size} bytes, not {self.size}", retryable=True)
        if self.fd < 0:
            self.fd = self.opening.result()

    def on_data(self, data: bytes, position: int) -> None:
        self.digest.update(data)
        os.write(self.fd, data)

    def finish(self) -> None:
        os.close(self.fd)
        if self.digest.hexdigest() != self.sha:
            raise SystemExit(f"sha256 mismatch: {self.final}")
        os.replace(self.temp, self.final)


class _RangedFile(_WholeFile):
    """One object as 64 MiB ranges written at their offsets; the hash follows a cursor, from the
    bytes in memory when they arrive at it, read back from the file when they arrived ahead."""

    def __init__(self, dest: Path, size: int, sha: str, path: str, helpers=None):
        super().__init__(dest, size, sha, path)
        self.cursor = 0
        self.written = dict.fromkeys(range(0, size, PART), 0)
        self.read_back = 0
        self.fd = os.open(self.temp, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
        os.posix_fallocate(self.fd, 0, size)

    def on_head(self, head) -> None:
        if head.object_size != self.size:
            raise SystemExit(f"{self.final}: {head.object_size} bytes, not {self.size}")

    def on_data(self, data: bytes, position: int) -> None:
        os.pwrite(self.fd, data, position)
        start = position - position % PART
        self.written[start] = position + len(data) - start
        if position == self.cursor:
            self.digest.update(data)
            self.cursor += len(data)
        while self.cursor < self.size:  # catch up over what arrived ahead, up to 4 MiB at a time
            start = self.cursor - self.cursor % PART
            available = start + self.written[start]
            if available <= self.cursor:
                break
            chunk = os.pread(self.fd, min(4 * MiB, available - self.cursor), self.cursor)
            self.read_back += len(chunk)
            self.digest.update(chunk)
            self.cursor += len(chunk)


def run_curl(endpoint: str, prefix: str, dest: Path, ranges: bool, drivers: int = 1) -> None:
    """Every object of the shape through the engine; with ``drivers`` > 1, the files are shared
    out to that many engines, each driven by its own thread (libcurl, hashlib and os.write
    release the GIL, so a second core can take part)."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from djarchive_common.curl import CurlEngine, Get
    from djarchive_common.store import Store

    entries = _manifest(endpoint, prefix)
    store = Store(_settings(endpoint))
    region = CurlEngine(store).region  # asked once, shared by the drivers
    helpers = ThreadPoolExecutor(4)  # creates, closes and renames files off the driver threads
    files: dict[str, _WholeFile] = {}
    counts = {"connections": 0}

    def drive(group: list[tuple[int, str, str]]) -> None:
        engine = CurlEngine(store, max_transfers=32 // drivers, region=region)
        left = {path: len(range(0, size, PART)) if ranges else 1 for size, _, path in group}

        def requests():  # taken lazily: each file is created just ahead of its GET
            for size, sha, path in group:
                sink = (_RangedFile if ranges else _WholeFile)(dest, size, sha, path, helpers)
                files[path] = sink
                key = f"{prefix}/{path}"
                if ranges:
                    for offset in range(0, size, PART):
                        length = min(PART, size - offset)
                        yield Get(key, sink.on_data, offset, length, on_head=sink.on_head, tag=path)
                else:
                    yield Get(key, sink.on_data, on_head=sink.on_head, tag=path)

        finishing = []
        for done in engine.run(requests()):
            if done.error is not None:
                raise SystemExit(f"{done.request.key}: {done.error}")
            left[done.request.tag] -= 1
            if not left[done.request.tag]:
                finishing.append(helpers.submit(files[done.request.tag].finish))
        for future in finishing:
            future.result()
        counts["connections"] += engine.connections
        engine.close()

    threads = [threading.Thread(target=drive, args=(entries[n::drivers],)) for n in range(drivers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    helpers.shutdown()
    read_back = sum(getattr(sink, "read_back", 0) for sink in files.values())
    print(f"connections={counts['connections']} read_back={read_back}", file=sys.stderr)


def run_minio(endpoint: str, prefix: str, dest: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from djarchive_common.store import Store

    entries = _manifest(endpoint, prefix)
    client = Store(_settings(endpoint)).minio

    def one(entry: tuple[int, str, str]) -> None:
        _, sha, path = entry
        temp, digest = dest / f".{path}.part", hashlib.sha256()
        response = client.get_object(servers.BUCKET, f"{prefix}/{path}")
        try:
            with open(temp, "wb", buffering=0) as out:
                for chunk in response.stream(256 * KiB, decode_content=False):
                    digest.update(chunk)
                    out.write(chunk)
        finally:
            response.close()
            response.release_conn()
        if digest.hexdigest() != sha:
            raise SystemExit(f"sha256 mismatch: {path}")
        os.replace(temp, dest / path)

    with ThreadPoolExecutor(32) as pool:
        list(pool.map(one, entries))


# -- the driver ----------------------------------------------------------------------------


def timed(command: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall seconds and CPU seconds (user + system) of one process."""
    started = time.perf_counter()
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode:
        raise SystemExit(f"{command[:3]} failed with status {process.returncode}")
    return wall, usage.ru_utime + usage.ru_stime


def upload(endpoint: str, prefix: str, files: dict[str, tuple[Path, str]]) -> None:
    """PUT every file with the engine (each with its real sha256), then the manifest."""
    from djarchive_common.curl import CurlEngine, Put
    from djarchive_common.store import Store

    store = Store(_settings(endpoint))
    handles = {path: os.open(source, os.O_RDONLY) for path, (source, _) in files.items()}
    try:
        with CurlEngine(store, max_transfers=16) as engine:
            puts = [
                Put(f"{prefix}/{path}", handles[path], 0, os.fstat(handles[path]).st_size, sha)
                for path, (_, sha) in files.items()
            ]
            for done in engine.run(puts):
                if done.error is not None:
                    raise SystemExit(f"upload of {done.request.key} failed: {done.error}")
    finally:
        for fd in handles.values():
            os.close(fd)
    lines = [
        f'"{os.path.getsize(source)}","{sha}","{path}"\n' for path, (source, sha) in sorted(files.items())
    ]
    store.put_bytes(f"{prefix}/manifest.csv", "".join(lines).encode())


def make_shape(work: Path, name: str, count: int, size: int) -> dict[str, tuple[Path, str]]:
    source = work / f"source-{name}"
    shutil.rmtree(source, ignore_errors=True)
    source.mkdir(parents=True)
    files = {}
    for n in range(count):
        path = source / f"f{n:05}.bin"
        digest = hashlib.sha256()
        with open(path, "wb") as out:
            for _ in range(0, size, 16 * MiB):
                block = os.urandom(min(16 * MiB, size))
                digest.update(block)
                out.write(block)
        files[path.name] = (path, digest.hexdigest())
    return files


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--small", type=int, default=2000)
    parser.add_argument("--large-mib", type=int, default=256)
    parser.add_argument("--shapes", default="S,L", help="which shapes (S, L or both)")
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        tool, endpoint, prefix, dest = args.child
        if tool == "minio32":
            run_minio(endpoint, prefix, Path(dest))
        else:
            run_curl(
                endpoint, prefix, Path(dest), ranges=tool == "curl-ranges", drivers=2 if "2" in tool else 1
            )
        return 0

    s5cmd = shutil.which("s5cmd") or str(Path(sys.executable).with_name("s5cmd"))
    work = servers.WORK / "curl-probe"
    work.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "AWS_ACCESS_KEY_ID": servers.ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": servers.SECRET_KEY,
        "AWS_REGION": "us-east-1",
        "AWS_SHARED_CREDENTIALS_FILE": str(work / "none"),
        "AWS_CONFIG_FILE": str(work / "none"),
    }
    shapes = {
        "S": (args.small, 16 * KiB, ["curl", "curl-2", "minio32", "s5cmd"]),
        "L": (4, args.large_mib * MiB, ["curl", "curl-2", "curl-ranges", "s5cmd"]),
    }
    results: dict[tuple[str, str], list[tuple[float, float]]] = {}
    with servers.S3rver() as server:
        endpoint = server.endpoint
        print(f"s3rver at {endpoint}; {server.version()}; s5cmd {subprocess.getoutput(s5cmd + ' version')}")
        for shape, (count, size, tools) in shapes.items():
            if shape not in args.shapes.split(","):
                continue
            files = make_shape(work, shape, count, size)
            started = time.perf_counter()
            upload(endpoint, shape, files)
            took = time.perf_counter() - started
            print(f"{shape}: {count} x {size // KiB} KiB uploaded by the engine in {took:.2f} s")
            manifest = work / f"manifest-{shape}.csv"
            manifest.write_text(
                "".join(f'"{size}","{sha}","{path}"\n' for path, (_, sha) in sorted(files.items()))
            )
            warm = work / "warm-up"  # one untimed download first: the server's caches warm for every tool
            shutil.rmtree(warm, ignore_errors=True)
            warm.mkdir()
            timed(
                [s5cmd, "--endpoint-url", endpoint, "cp", f"s3://{servers.BUCKET}/{shape}/f*", f"{warm}/"],
                env,
            )
            shutil.rmtree(warm)
            for run in range(args.repeat):
                for tool in tools:
                    dest = work / f"dest-{shape}-{tool}"
                    shutil.rmtree(dest, ignore_errors=True)
                    dest.mkdir()
                    if tool == "s5cmd":
                        command = [
                            s5cmd,
                            "--endpoint-url",
                            endpoint,
                            "cp",
                            f"s3://{servers.BUCKET}/{shape}/f*",
                            f"{dest}/",
                        ]
                        wall, cpu = timed(command, env)
                        check = [sys.executable, str(HERE / "hashcheck.py"), str(manifest), str(dest)]
                        hash_wall, hash_cpu = timed(check, env)
                        results.setdefault((shape, "s5cmd"), []).append((wall, cpu))
                        results.setdefault((shape, "s5cmd+hashlib"), []).append(
                            (wall + hash_wall, cpu + hash_cpu)
                        )
                    else:
                        command = [sys.executable, __file__, "--child", tool, endpoint, shape, str(dest)]
                        results.setdefault((shape, tool), []).append(timed(command, env))
                        verify = [sys.executable, str(HERE / "hashcheck.py"), str(manifest), str(dest)]
                        timed(verify, env)  # the copy is right (not counted)
                    name = "s5cmd+hashlib" if tool == "s5cmd" else tool
                    print(f"  run {run + 1} {shape} {tool}: wall {results[(shape, name)][-1][0]:.2f} s")
                    shutil.rmtree(dest, ignore_errors=True)
            shutil.rmtree(work / f"source-{shape}", ignore_errors=True)
    print()
    heading = ("shape", "tool", "wall s (runs)", "cpu s (runs)", "wall/floor", "cpu/floor")
    print("{:5} {:15} {:28} {:28} {:>10} {:>9}".format(*heading))
    for (shape, tool), runs in results.items():
        floor = results[(shape, "s5cmd+hashlib")]
        wall = statistics.median(run[0] for run in runs)
        cpu = statistics.median(run[1] for run in runs)
        floor_wall = statistics.median(run[0] for run in floor)
        floor_cpu = statistics.median(run[1] for run in floor)
        walls = " ".join(f"{run[0]:.2f}" for run in runs)
        cpus = " ".join(f"{run[1]:.2f}" for run in runs)
        print(f"{shape:5} {tool:15} {walls:28} {cpus:28} {wall / floor_wall:10.2f} {cpu / floor_cpu:9.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
