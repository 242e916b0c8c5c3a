"""Issue 29: move only what changed; every byte counted by a proxy, in one run.

    python benchmarks/delta.py                  # the issue's sizes (~6 min on a quiet machine)
    python benchmarks/delta.py --scale 0.125    # a smoke run: every size an eighth

Against moto_server (a subprocess), through ``counting_proxy.py`` (request bodies as ``sent``,
answer bodies as they stream); the tools run in this process through their Python API, the
interrupted downloads in a subprocess that gets SIGINT or SIGKILL. Measured:

1. **upload reuse**: r1 (40 files, ~60 MiB) published; r2 = r1 with 2 small files changed and 1
   added. Request-body bytes of r2's upload <= 1.05 x (changed + added) + 64 KiB; and the same
   upload with ``--no-delta`` (what was sent before).
2. **resume**: a 200 MiB file downloaded in 2 MiB ranges, 4 at a time, interrupted (SIGINT, SIGKILL) once half
   of it crossed the proxy; the re-run's GET bytes <= what was left + 10 % of the file.
3. **large file delta**: a 512 MiB file, then 1 MiB overwritten in its middle, then 100 bytes
   inserted there. The upgrade's GET bytes (everything but manifests, signatures and listings:
   the chunk index counts) <= 1.1 x 8 MiB + 1 % of the file; the upload of each changed revision
   sends <= 64 MiB; wall times against the same transfers with ``--no-delta``.
4. **index cost**: computing the chunk index of the 512 MiB file against hashing it (sha256)
   alone, best of three; target <= 1.3.

Prints a table of bytes and ratios, and writes it as JSON to
``benchmarks/.work/results/delta-<timestamp>.json``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import servers
from counting_proxy import CountingProxy

HERE = Path(__file__).resolve().parent
WORK = HERE / ".work" / "delta"
KiB = 1024
MiB = 1024 * KiB
DATASET = "bench-delta"
# Ranges of 2 MiB: what crossed the proxy but sat unread in the killed client's socket buffers
# (up to one range per connection) counts as fetched before the signal.
RESUME_PART = 2 * MiB


def data_bytes(counts: dict, key: str = "streamed", method: str = "GET") -> int:
    """Bytes of ``method`` data objects in a proxy snapshot (the chunk index counts as data)."""
    return counts.get(key, {}).get(f"{method} data", 0)


def sent_bytes(counts: dict) -> int:
    """Request-body bytes of every request (data, manifests, leases, multipart XML)."""
    return sum(counts.get("sent", {}).values())


def write_tree(root: Path, files: dict[str, bytes]) -> Path:
    shutil.rmtree(root, ignore_errors=True)
    for subpath, data in files.items():
        path = root / subpath
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return root


def environment(endpoint: str) -> dict[str, str]:
    keys = {"ACCESS_KEY": servers.ACCESS_KEY, "SECRET_KEY": servers.SECRET_KEY}
    env = {}
    for role in ("CLIENT", "ADMIN"):
        env[f"DJARCHIVE_{role}_ENDPOINT"] = endpoint
        env[f"DJARCHIVE_{role}_BUCKET"] = servers.BUCKET
        for name, value in keys.items():
            env[f"DJARCHIVE_{role}_{name}"] = value
    return env


class Bench:
    def __init__(self, proxy: CountingProxy, scale: float):
        self.proxy, self.scale = proxy, scale
        self.results: dict[str, dict] = {}

    def size(self, mib: float) -> int:
        return max(MiB, int(mib * MiB * self.scale))

    def timed(self, what, *args, **kwargs):
        self.proxy.counts.take()
        started = time.monotonic()
        result = what(*args, **kwargs)
        return result, time.monotonic() - started, self.proxy.counts.take()

    # -- 1 ---------------------------------------------------------------------------------

    def upload_reuse(self) -> None:
        from djarchive_admin import admin

        rng = random.Random(29)
        count = 40
        mean = self.size(60) // count
        first = {
            f"s{i % 4}/f{i:02d}.bin": rng.randbytes(rng.randrange(mean // 2, mean * 3 // 2))
            for i in range(count)
        }
        second = dict(first)
        second["s0/f00.bin"] = rng.randbytes(150 * KiB)
        path = "s1/f01.bin"
        second[path] = first[path][:1000] + b"changed" + first[path][1007:]
        second["s2/added.bin"] = rng.randbytes(200 * KiB)
        new = sum(len(second[p]) for p in ("s0/f00.bin", path, "s2/added.bin"))
        tool = admin()
        tool.upload(DATASET, "r1", write_tree(WORK / "r1", first))
        summary, wall, counts = self.timed(tool.upload, DATASET, "r2", write_tree(WORK / "r2", second))
        _, full_wall, full = self.timed(tool.upload, DATASET, "r2-full", WORK / "r2", delta=False)
        sent = sent_bytes(counts)
        bound = 1.05 * new + 64 * KiB
        self.results["upload reuse"] = {
            "revision bytes": sum(map(len, second.values())),
            "changed + added bytes": new,
            "sent": sent,
            "bound": bound,
            "met": sent <= bound,
            "sent with --no-delta": sent_bytes(full),
            "wall s": round(wall, 2),
            "wall s with --no-delta": round(full_wall, 2),
            "summary": str(summary),
        }

    # -- 2 ---------------------------------------------------------------------------------

    def resume(self, env: dict[str, str]) -> None:
        from djarchive_admin import admin
        from djarchive_client import client

        size = self.size(200)
        data = os.urandom(size)
        admin().upload(DATASET, "big200", write_tree(WORK / "big200", {"big.bin": data}), delta=False)
        script = (
            "import signal, sys\n"
            "signal.signal(signal.SIGINT, signal.default_int_handler)\n"
            "from djarchive_client import client\n"
            "client().download(sys.argv[1], 'big200', sys.argv[2], create_target=True, jobs=4, "
            f"part_size={RESUME_PART}, multipart_threshold={RESUME_PART * 2})\n"
        )
        for name, signum in (("SIGINT", signal.SIGINT), ("SIGKILL", signal.SIGKILL)):
            target = WORK / f"resume-{name}"
            shutil.rmtree(target, ignore_errors=True)
            self.proxy.counts.take()
            process = subprocess.Popen(
                [sys.executable, "-c", script, DATASET, str(target)],
                env={**os.environ, **env},
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )
            deadline = time.monotonic() + 600
            while self.proxy.counts.streamed.get("GET data", 0) < size // 2 and time.monotonic() < deadline:
                if process.poll() is not None:
                    break
                time.sleep(0.005)
            process.send_signal(signum)
            process.communicate(timeout=60)
            first = data_bytes(self.proxy.counts.take())
            _, wall, counts = self.timed(
                client().download,
                DATASET,
                "big200",
                target,
                jobs=4,
                part_size=8 * MiB,
                multipart_threshold=16 * MiB,
            )
            again = data_bytes(counts)
            ok = hashlib.sha256((target / "big.bin").read_bytes()).digest() == hashlib.sha256(data).digest()
            bound = (size - first) + 0.1 * size
            self.results[f"resume after {name}"] = {
                "file bytes": size,
                "fetched before the signal": first,
                "re-run fetched": again,
                "bound (left + 10 %)": bound,
                "met": again <= bound and ok,
                "file verified": ok,
                "re-run wall s": round(wall, 2),
            }

    # -- 3 ---------------------------------------------------------------------------------

    def large_delta(self) -> None:
        from djarchive_admin import admin
        from djarchive_client import client

        size = self.size(512)
        middle = size // 2
        old = os.urandom(size)
        versions = {
            "overwrite": old[:middle] + os.urandom(MiB) + old[middle + MiB :],
            "insert": old[:middle] + os.urandom(100) + old[middle:],
        }
        tool = admin()
        _, base_wall, _ = self.timed(tool.upload, DATASET, "l0", write_tree(WORK / "l0", {"big.bin": old}))
        for name, data in versions.items():
            revision = f"l-{name}"
            source = write_tree(WORK / revision, {"big.bin": data})
            summary, up_wall, up = self.timed(tool.upload, DATASET, revision, source)
            _, full_up_wall, full_up = self.timed(
                tool.upload, DATASET, revision + "-full", source, delta=False
            )
            target = WORK / f"copy-{name}"
            shutil.rmtree(target, ignore_errors=True)
            client().download(DATASET, "l0", target, create_target=True)
            got, down_wall, down = self.timed(client().download, DATASET, revision, target)
            cold = WORK / f"cold-{name}"
            shutil.rmtree(cold, ignore_errors=True)
            _, cold_wall, cold_counts = self.timed(
                client().download, DATASET, revision, cold, create_target=True
            )
            ok = (target / "big.bin").read_bytes() == data
            get_bound = 1.1 * 8 * MiB + 0.01 * size
            self.results[f"512 MiB, {name}"] = {
                "file bytes": size,
                "upgrade GET bytes": data_bytes(down, "bytes"),
                "upgrade bound": get_bound,
                "upgrade met": data_bytes(down, "bytes") <= get_bound and ok,
                "upgrade wall s": round(down_wall, 2),
                "cold download GET bytes": data_bytes(cold_counts, "bytes"),
                "cold download wall s": round(cold_wall, 2),
                "upload sent": sent_bytes(up),
                "upload bound": 64 * MiB,
                "upload met": sent_bytes(up) <= 64 * MiB,
                "upload wall s": round(up_wall, 2),
                "upload with --no-delta sent": sent_bytes(full_up),
                "upload with --no-delta wall s": round(full_up_wall, 2),
                "first upload wall s": round(base_wall, 2),
                "file verified": ok,
                "upload summary": str(summary),
                "download summary": str(got),
            }
        self.index_cost(old)

    # -- 4 ---------------------------------------------------------------------------------

    def index_cost(self, data: bytes) -> None:
        from djarchive_common.chunks import Chunker, file_chunks

        path = WORK / "index-cost.bin"
        path.write_bytes(data)
        hashing, index = [], []
        for _ in range(3):
            started = time.perf_counter()
            fd = os.open(path, os.O_RDONLY)
            digest = hashlib.sha256()
            while chunk := os.read(fd, 1 << 20):
                digest.update(chunk)
            os.close(fd)
            hashing.append(time.perf_counter() - started)
            started = time.perf_counter()
            fd = os.open(path, os.O_RDONLY)
            found = file_chunks(fd, len(data), "", Chunker())
            os.close(fd)
            index.append(time.perf_counter() - started)
        ratio = min(index) / min(hashing)
        self.results["index cost"] = {
            "file bytes": len(data),
            "sha256 alone s": round(min(hashing), 3),
            "chunk index s": round(min(index), 3),
            "ratio": round(ratio, 2),
            "met (<= 1.3)": ratio <= 1.3,
            "chunks": len(found.chunks),
            "index bytes per file byte": round(len(json.dumps(found.chunks)) / len(data), 6),
        }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--scale", type=float, default=1.0, help="multiply every size (default 1)")
    args = parser.parse_args(argv)
    WORK.mkdir(parents=True, exist_ok=True)
    load = " ".join(Path("/proc/loadavg").read_text().split()[:3]) if Path("/proc/loadavg").exists() else "?"
    print(f"machine: {os.cpu_count()} CPUs, load average {load}", flush=True)
    started = time.time()
    if args.scale < 1:  # files below the 64 MiB threshold would get no chunk index: lower it as much
        import functools

        from djarchive_admin import archive
        from djarchive_admin.upload import UploadOptions

        threshold = max(MiB, int(64 * MiB * args.scale))
        archive.UploadOptions = functools.partial(UploadOptions, delta_threshold=threshold)  # type: ignore[misc]
    with servers.Moto() as server, CountingProxy(server.port) as proxy:
        env = environment(proxy.endpoint)
        os.environ.update(env)
        bench = Bench(proxy, args.scale)
        for step in (bench.upload_reuse, lambda: bench.resume(env), bench.large_delta):
            step()
            print(json.dumps(bench.results, indent=1), flush=True)
    results = {"scale": args.scale, "seconds": round(time.time() - started), "results": bench.results}
    out = HERE / ".work" / "results" / f"delta-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1))
    print(f"\n{'measurement':60} {'value':>16}")
    for name, values in bench.results.items():
        for key, value in values.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                shown = f"{value:>16,.2f}" if isinstance(value, float) else f"{value:>16,}"
                print(f"{name + ': ' + key:60.60} {shown}")
        met = [value for key, value in values.items() if key.endswith("met") or key.startswith("met")]
        print(f"{name:60.60} {'MET' if met and all(met) else 'NOT MET'}")
    print(f"written to {out}")
    shutil.rmtree(WORK, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
