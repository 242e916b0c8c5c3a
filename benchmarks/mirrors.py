"""Benchmarks of issue 28: mirrors and failover, on the M shape (``generate.py``: 300 files, 600 MiB).

    python benchmarks/mirrors.py                         # s3rver (moto without Node), both parts
    python benchmarks/mirrors.py --parts two --rate 20   # the two-source part only, 20 MiB/s links

Set-up: one local S3 server (the primary, ``servers.py``), M uploaded and signed with
``djarchive-admin upload --sign-key``, then copied with ``djarchive-admin mirror`` into a folder
that ``static_server.py`` (Python's ``http.server`` with keep-alive and byte ranges, its own
process) serves as the mirror. Every download is ``djarchive download`` in its own process, into
an empty TARGET after ``sync``, checked complete (``ok``, every byte fetched) from its ``--json``.

Parts:

- **failover** (loopback): (a) M from the mirror alone: the primary unreachable (a closed port),
  the signed manifest taken from the mirror (``--mirror``, ``--trust``); (b) M from the primary
  and the mirror, the primary behind a forwarding proxy (``latency_proxy.py``, no delay) that is
  killed for good once half of M's bytes have arrived (``--events``): its connections cut, new
  ones refused. Target: (b)'s whole wall time <= 1.3 x (a). (a) is taken as the download's own
  ``seconds`` (its data phase, without the tries at the unreachable primary), the stricter
  measure; the ratio of the two wall times is shown too.
- **two** (40 ms RTT, limited bandwidth): the primary and the mirror each behind a latency proxy
  with a 20 ms delay each way and the same bandwidth for the whole proxy (``--rate`` MiB/s);
  (a) M from the primary alone; (b) M from both (``--mirror``). Target: (b) <= 0.65 x (a).

Results: printed, and written to ``benchmarks/.work/results/mirrors-<timestamp>.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import generate
import run
import servers

HERE = Path(__file__).resolve().parent
WORK = HERE / ".work"
BENCH = WORK / "mirror-bench"
MiB = 1024 * 1024
DATASET, REVISION = "bench-m", "v1"


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Process:
    """A helper process that prints ``listening on HOST:PORT`` (a context manager that kills it)."""

    def __init__(self, *args: str):
        self.args = [sys.executable, *args]
        self.process: subprocess.Popen | None = None
        self.port = 0

    def __enter__(self) -> Process:
        self.process = subprocess.Popen(self.args, stdout=subprocess.PIPE, text=True)
        line = self.process.stdout.readline() if self.process.stdout else ""
        if not line.startswith("listening on "):
            self.kill()
            raise RuntimeError(f"{self.args[1]} did not start: {line!r}")
        self.port = int(line.strip().rpartition(":")[2])
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    def __exit__(self, *exc_info: object) -> None:
        self.kill()


def proxy(target_port: int, delay: float, rate: float = 0.0) -> Process:
    """``latency_proxy.py`` to ``target_port``: ``delay`` each way, ``rate`` bytes/s for all."""
    return Process(
        str(HERE / "latency_proxy.py"),
        "--target",
        f"127.0.0.1:{target_port}",
        "--delay",
        str(delay),
        "--rate",
        str(rate),
        "--max-buffer",
        str(8 * MiB),
    )


def prepare(server: servers.Server, data: generate.Dataset) -> tuple[Path, str]:
    """Upload M signed, mirror it; return the mirror's folder and the trusted key line."""
    from djarchive_admin import admin

    if BENCH.exists():
        shutil.rmtree(BENCH)
    BENCH.mkdir(parents=True)
    key = BENCH / "curator.key"
    tool = admin(
        endpoint=server.endpoint,
        bucket=servers.BUCKET,
        access_key=servers.ACCESS_KEY,
        secret_key=servers.SECRET_KEY,
        sign_key=str(key),
    )
    from djarchive_admin import keygen

    line, _, _ = keygen(key)
    source = BENCH / "source"
    run._link_copy(data.root, source)
    started = time.monotonic()
    tool.upload(DATASET, REVISION, str(source), jobs=16)
    print(f"uploaded and signed M in {time.monotonic() - started:.1f} s", flush=True)
    root = BENCH / "mirror"
    started = time.monotonic()
    result = tool.mirror(DATASET, REVISION, root, jobs=16)
    print(f"djarchive-admin mirror: {result} ({time.monotonic() - started:.1f} s)", flush=True)
    shutil.rmtree(source)
    return root, line


def download(env: dict[str, str], *extra: str, cut: Process | None = None, total: int = 0) -> dict:
    """One ``djarchive download`` of M into an empty TARGET; with ``cut``, that process is killed
    once half of ``total`` bytes have arrived. Returns wall time, the summary and when it was cut."""
    target = BENCH / "target"
    events = BENCH / "events.jsonl"
    shutil.rmtree(target, ignore_errors=True)
    events.unlink(missing_ok=True)
    os.sync()
    time.sleep(1)
    command = [
        run.find("djarchive"),
        "download",
        DATASET,
        REVISION,
        str(target),
        "--json",
        "--events",
        str(events),
    ]
    command += list(extra)
    started = time.monotonic()
    child = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    cut_at = None
    if cut is not None:
        while child.poll() is None and cut_at is None:
            time.sleep(0.02)
            done = 0
            if events.exists():
                for text in events.read_text().splitlines():
                    try:
                        event = json.loads(text)
                    except ValueError:
                        continue  # a line being written
                    done = max(done, event.get("bytes_done", 0))
            if done >= total / 2:
                cut.kill()
                cut_at = time.monotonic() - started
    out, err = child.communicate()
    wall = time.monotonic() - started
    if child.returncode != 0:
        raise RuntimeError(f"download failed ({child.returncode}): {err.strip()[-2000:]}")
    summary = json.loads(out)
    if not summary["ok"] or summary["fetched_bytes"] != summary["bytes"]:
        raise RuntimeError(f"incomplete download: {summary}")
    shutil.rmtree(target, ignore_errors=True)
    return {
        "wall": round(wall, 2),
        "seconds": summary["seconds"],
        "sources": summary["sources"],
        "dropped": summary["dropped_sources"],
        "cut_at": None if cut_at is None else round(cut_at, 2),
        "warnings": [line for line in err.splitlines() if line.startswith("djarchive:")][:5],
    }


def bench_failover(env: dict[str, str], mirror: Process, line: str, primary_port: int, total: int) -> dict:
    alone_env = {**env, "DJARCHIVE_CLIENT_ENDPOINT": f"http://127.0.0.1:{closed_port()}"}
    alone = download(alone_env, "--mirror", mirror.url + "/", "--trust", line)
    print(f"  mirror alone: {alone}", flush=True)
    with proxy(primary_port, 0.0) as forward:
        both_env = {**env, "DJARCHIVE_CLIENT_ENDPOINT": forward.url}
        failover = download(both_env, "--mirror", mirror.url + "/", "--trust", line, cut=forward, total=total)
    print(f"  primary cut mid-way: {failover}", flush=True)
    return {
        "mirror_alone": alone,
        "failover": failover,
        "ratio": round(failover["wall"] / alone["seconds"], 3),
        "ratio_walls": round(failover["wall"] / alone["wall"], 3),
        "target": 1.3,
    }


def bench_two(env: dict[str, str], mirror: Process, primary_port: int, rate: float) -> dict:
    with proxy(primary_port, 0.020, rate) as near, proxy(mirror.port, 0.020, rate) as far:
        one_env = {**env, "DJARCHIVE_CLIENT_ENDPOINT": near.url}
        one = download(one_env)
        print(f"  primary alone: {one}", flush=True)
        both = download(one_env, "--mirror", far.url + "/")
        print(f"  primary and mirror: {both}", flush=True)
    return {
        "rate_MiBps": rate / MiB,
        "one": one,
        "both": both,
        "ratio": round(both["wall"] / one["wall"], 3),
        "ratio_seconds": round(both["seconds"] / one["seconds"], 3),
        "target": 0.65,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--parts", default="failover,two", help="failover, two (default: both)")
    parser.add_argument("--server", choices=("s3rver", "moto"), default="s3rver", help="default s3rver")
    parser.add_argument("--rate", type=float, default=20.0, help="MiB/s of each link in 'two' (default 20)")
    args = parser.parse_args(argv)
    parts = {part.strip() for part in args.parts.split(",") if part.strip()}
    WORK.mkdir(parents=True, exist_ok=True)
    run.write_bytecode()
    info = run.machine()
    print(f"machine: {info}; load {os.getloadavg()}", flush=True)
    data = generate.generate("M")
    server: servers.Server = servers.S3rver() if args.server == "s3rver" else servers.Moto()
    if isinstance(server, servers.S3rver) and not server.executable:
        print("s3rver is not available (Node.js and npm): using moto_server", file=sys.stderr)
        server = servers.Moto()
    results: dict = {"machine": info, "shape": "M", "files": data.files, "bytes": data.bytes}
    with server:
        server.make_bucket()
        results["server"] = server.version()
        root, line = prepare(server, data)
        env = run.tool_env(server.endpoint, WORK)
        with Process(str(HERE / "static_server.py"), "--directory", str(root)) as mirror:
            if "failover" in parts:
                print("failover (loopback):", flush=True)
                results["failover"] = bench_failover(env, mirror, line, server.port, data.bytes)
            if "two" in parts:
                print(f"two sources (40 ms RTT, {args.rate:g} MiB/s each):", flush=True)
                results["two"] = bench_two(env, mirror, server.port, args.rate * MiB)
    results["load_after"] = os.getloadavg()
    print()
    if "failover" in results:
        f = results["failover"]
        verdict = "met" if f["ratio"] <= f["target"] else "NOT met"
        print(
            f"failover: primary cut at {f['failover']['cut_at']} s, total {f['failover']['wall']} s; "
            f"mirror alone {f['mirror_alone']['seconds']} s (wall {f['mirror_alone']['wall']} s): "
            f"ratio {f['ratio']} (walls {f['ratio_walls']}), target <= {f['target']}: {verdict}"
        )
    if "two" in results:
        t = results["two"]
        verdict = "met" if t["ratio"] <= t["target"] else "NOT met"
        print(
            f"two sources: one {t['one']['wall']} s, both {t['both']['wall']} s: ratio {t['ratio']} "
            f"(download seconds {t['ratio_seconds']}), target <= {t['target']}: {verdict}; "
            f"bytes by source {t['both']['sources']}"
        )
    out = WORK / "results" / f"mirrors-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1))
    print(f"results: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
