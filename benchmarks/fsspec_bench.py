"""Benchmarks of issue 18: ``djarchive://`` against raw minio and s3fs, and shard downloads.

    python benchmarks/fsspec_bench.py                        # all three parts, on s3rver (moto without Node)
    python benchmarks/fsspec_bench.py --parts ttfb --reads 100
    python benchmarks/fsspec_bench.py --parts shards --runs 5 --server moto

Parts (each on one local S3 server started here, as in ``run.py``; see ``servers.py``):

- **ttfb**: 1 MiB ranged reads at the same random offsets of a 256 MiB object: a raw ranged GET
  with minio-py (time to its first byte, and to all of it) against ``fs.cat_file(path, start,
  end)`` on ``djarchive://`` with the manifest already read (warm), on a fresh filesystem (cold:
  the manifest GET included), and ``fs.open()`` + ``seek`` + ``read(1 MiB)`` with the default
  block cache (5 MiB blocks). The methods take turns at each offset. Target: the warm ranged read
  within 1.5 x a raw ranged GET.
- **dask**: ``dask.dataframe.read_csv`` over a revision's CSV files (``part-*.csv``, one
  partition per file, so each is a whole, verified read), summed, on Dask's threaded scheduler:
  ``djarchive://`` against ``s3://`` with s3fs (when installed); the results must be equal, the
  time ratio is reported. Each run starts from fresh filesystem instances (manifest or listing
  included).
- **shards**: the M shape (``generate.py``) downloaded into an empty TARGET by 1, 2 and 4
  concurrent ``djarchive download --shard K/N`` processes with ``--jobs`` 32/N each, against
  one process with ``--jobs 32``; ``sync`` and a second's pause before each. After each sharded
  run the copy must verify (``djarchive verify``) and a plain download must fetch nothing.

Results: printed, and written to ``benchmarks/.work/results/fsspec-<timestamp>.md`` and ``.json``.
"""

from __future__ import annotations

import argparse
import compileall
import hashlib
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import sysconfig
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import generate
import run
import servers

HERE = Path(__file__).resolve().parent
WORK = HERE / ".work"
KiB, MiB = 1024, 1024 * 1024
LARGE = 256 * MiB
READ = 1 * MiB
CSV_FILES = 24
CSV_ROWS = 60_000
TOTAL_JOBS = 32


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def p90(values: list[float]) -> float:
    return sorted(values)[int(0.9 * (len(values) - 1))] if values else float("nan")


def minio_client(endpoint: str):
    from minio import Minio

    return Minio(
        endpoint.split("://", 1)[1],
        access_key=servers.ACCESS_KEY,
        secret_key=servers.SECRET_KEY,
        secure=False,
    )


def publish_files(endpoint: str, dataset: str, revision: str, files: dict[str, Path]) -> None:
    """Objects with their sha256 as metadata, then the manifest, as the archive holds them."""
    client = minio_client(endpoint)
    entries = []
    for subpath, path in files.items():
        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            while block := handle.read(4 * MiB):
                digest.update(block)
        entries.append((subpath, path.stat().st_size, digest.hexdigest()))
        client.fput_object(
            servers.BUCKET,
            f"{dataset}/{revision}/{subpath}",
            str(path),
            metadata={"sha256": digest.hexdigest()},
            part_size=64 * MiB,
        )
    manifest = generate.manifest_bytes(entries)
    client.put_object(
        servers.BUCKET,
        f"{dataset}/{revision}/{generate.MANIFEST_NAME}",
        __import__("io").BytesIO(manifest),
        len(manifest),
    )


def data_folder() -> Path:
    folder = WORK / "data" / "fsspec"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def large_file() -> Path:
    """A 256 MiB file of seeded random bytes (generated once)."""
    path = data_folder() / "large.bin"
    if not path.is_file() or path.stat().st_size != LARGE:
        rng = random.Random(1801)
        with open(path, "wb") as handle:
            for _ in range(LARGE // (4 * MiB)):
                handle.write(rng.randbytes(4 * MiB))
    return path


def csv_files() -> dict[str, Path]:
    """CSV_FILES seeded CSV files of CSV_ROWS rows each (generated once)."""
    folder = data_folder() / "csv"
    folder.mkdir(exist_ok=True)
    files = {}
    for number in range(CSV_FILES):
        path = folder / f"part-{number:02d}.csv"
        if not path.is_file():
            rng = random.Random(1900 + number)
            lines = ["session,unit,spikes,rate"]
            lines += [
                f"s{number:02d}-{row // 1000},{row % 1000},{rng.randrange(10_000)},{rng.random() * 100:.6f}"
                for row in range(CSV_ROWS)
            ]
            path.write_text("\n".join(lines) + "\n")
        files[path.name] = path
    return files


# -- ttfb ----------------------------------------------------------------------------------------


def bench_ttfb(endpoint: str, reads: int) -> dict:
    from djarchive_client.filesystem import DJArchiveFileSystem

    publish_files(endpoint, "bench-fsspec", "v1", {"large.bin": large_file()})
    key, url = "bench-fsspec/v1/large.bin", "bench-fsspec/v1/large.bin"
    client = minio_client(endpoint)
    rng = random.Random(7)
    offsets = [rng.randrange(0, (LARGE - READ) // READ) * READ for _ in range(reads)]
    times: dict[str, list[float]] = {
        "raw minio, first byte": [],
        "raw minio, 1 MiB": [],
        "djarchive:// cat_file (warm)": [],
        "djarchive:// cat_file (cold: + manifest)": [],
        "djarchive:// open+seek+read (5 MiB block)": [],
    }
    warm = DJArchiveFileSystem(skip_instance_cache=True)
    expected = large_file().read_bytes()

    def raw(offset: int) -> bytes:
        started = time.perf_counter()
        response = client.get_object(servers.BUCKET, key, offset=offset, length=READ)
        try:
            first = response.read(1)
            times["raw minio, first byte"].append(time.perf_counter() - started)
            data = first + response.read()
        finally:
            response.close()
            response.release_conn()
        times["raw minio, 1 MiB"].append(time.perf_counter() - started)
        return data

    def timed(name: str, read: Callable[[int], bytes]) -> Callable[[int], bytes]:
        def measure(offset: int) -> bytes:
            started = time.perf_counter()
            data = read(offset)
            times[name].append(time.perf_counter() - started)
            return data

        return measure

    def opened(offset: int) -> bytes:
        with warm.open(url) as handle:
            handle.seek(offset)
            return handle.read(READ)

    methods = [
        raw,
        timed("djarchive:// cat_file (warm)", lambda offset: warm.cat_file(url, offset, offset + READ)),
        timed(
            "djarchive:// cat_file (cold: + manifest)",
            lambda offset: DJArchiveFileSystem(skip_instance_cache=True).cat_file(url, offset, offset + READ),
        ),
        timed("djarchive:// open+seek+read (5 MiB block)", opened),
    ]
    raw(0), warm.cat_file(url, 0, READ)  # connections and the manifest: warm
    for name in times:
        times[name].clear()
    for number, offset in enumerate(offsets):
        for method in methods[number % len(methods) :] + methods[: number % len(methods)]:
            if method(offset) != expected[offset : offset + READ]:
                raise RuntimeError(f"wrong bytes at {offset}")
    rows = {
        name: {"median_ms": median(v) * 1e3, "p90_ms": p90(v) * 1e3, "n": len(v)} for name, v in times.items()
    }
    warm_ms = rows["djarchive:// cat_file (warm)"]["median_ms"]
    return {
        "rows": rows,
        "ratio_warm_to_raw_1mib": warm_ms / rows["raw minio, 1 MiB"]["median_ms"],
        "ratio_warm_to_raw_first_byte": warm_ms / rows["raw minio, first byte"]["median_ms"],
        "ratio_cold_to_raw_1mib": rows["djarchive:// cat_file (cold: + manifest)"]["median_ms"]
        / rows["raw minio, 1 MiB"]["median_ms"],
    }


# -- dask ----------------------------------------------------------------------------------------


def bench_dask(endpoint: str, runs: int) -> dict:
    import dask
    import dask.dataframe as dd
    import pandas as pd

    from djarchive_client.filesystem import DJArchiveFileSystem

    publish_files(endpoint, "bench-csv", "v1", csv_files())
    size = sum(path.stat().st_size for path in csv_files().values())
    urls = {"djarchive://": ("djarchive://bench-csv/v1/part-*.csv", {})}
    note = ""
    try:
        import s3fs
    except ImportError:
        s3fs = None
        note = "s3fs is not installed: djarchive:// alone"
    if s3fs is not None:
        urls["s3:// (s3fs)"] = (
            f"s3://{servers.BUCKET}/bench-csv/v1/part-*.csv",
            {
                "key": servers.ACCESS_KEY,
                "secret": servers.SECRET_KEY,
                "client_kwargs": {"endpoint_url": endpoint},
            },
        )
    times: dict[str, list[float]] = {name: [] for name in urls}
    results: dict[str, pd.Series] = {}
    with dask.config.set(scheduler="threads"):
        for number in range(runs):
            names = list(urls)
            for name in names[number % len(names) :] + names[: number % len(names)]:
                DJArchiveFileSystem.clear_instance_cache()
                if s3fs is not None:
                    s3fs.S3FileSystem.clear_instance_cache()
                pattern, options = urls[name]
                started = time.perf_counter()
                frame = dd.read_csv(pattern, storage_options=options)
                total = frame[["spikes", "rate"]].sum()
                rows = frame.shape[0]
                computed, count = dask.compute(total, rows)
                times[name].append(time.perf_counter() - started)
                result = pd.concat([computed, pd.Series({"rows": count})])
                if name in results and not results[name].equals(result):
                    raise RuntimeError(f"{name}: another result than before")
                results[name] = result
    first = next(iter(results.values()))
    same = all(result.equals(first) for result in results.values())
    if not same:
        raise RuntimeError(f"the results differ: {results}")
    rows_out = {
        name: {"median_s": median(v), "min_s": min(v), "max_s": max(v), "n": len(v)}
        for name, v in times.items()
    }
    ratio = None
    if "s3:// (s3fs)" in rows_out:
        ratio = rows_out["djarchive://"]["median_s"] / rows_out["s3:// (s3fs)"]["median_s"]
    return {
        "rows": rows_out,
        "ratio_djarchive_to_s3fs": ratio,
        "same_results": same,
        "result": {key: float(value) for key, value in first.items()},
        "files": CSV_FILES,
        "bytes": size,
        "s3fs": getattr(s3fs, "__version__", None),
        "note": note,
    }


# -- shards --------------------------------------------------------------------------------------


def bench_shards(endpoint: str, runs: int, counts: list[int]) -> dict:
    data = generate.generate("M")
    run.publish(endpoint, data, "bench-m", "v1", use_admin=False)
    djarchive = run.find("djarchive")
    if not djarchive:
        raise RuntimeError("no djarchive executable (pip install -e packages/djarchive-client)")
    env = run.tool_env(endpoint, WORK)
    logs = WORK / "logs" / "fsspec-shards"
    logs.mkdir(parents=True, exist_ok=True)
    times: dict[int, list[float]] = {count: [] for count in counts}
    cpu: dict[int, list[float]] = {count: [] for count in counts}
    checks: list[str] = []
    for number in range(runs):
        for count in counts[number % len(counts) :] + counts[: number % len(counts)]:
            target = WORK / "copies" / f"shards-{count}"
            shutil.rmtree(target, ignore_errors=True)
            os.sync()
            time.sleep(1.0)
            jobs = str(TOTAL_JOBS // count)
            commands = [
                [djarchive, "download", "-q", "--jobs", jobs, "bench-m", "v1", str(target)]
                + (["--shard", f"{k}/{count}"] if count > 1 else [])
                for k in range(1, count + 1)
            ]
            started = time.perf_counter()
            with open(logs / f"run{number}-{count}.log", "wb") as log:
                processes = [subprocess.Popen(cmd, env=env, stdout=log, stderr=log) for cmd in commands]
                codes, seconds = [], 0.0
                for process in processes:
                    _, status, usage = os.wait4(process.pid, 0)
                    process.returncode = os.waitstatus_to_exitcode(status)  # reaped: Popen must not wait
                    codes.append(process.returncode)
                    seconds += usage.ru_utime + usage.ru_stime
            times[count].append(time.perf_counter() - started)
            cpu[count].append(seconds)
            if any(codes):
                raise RuntimeError(f"{count} shard(s): exit codes {codes}; see {logs}")
            verify = subprocess.run(
                [djarchive, "verify", "bench-m", "v1", str(target)], env=env, capture_output=True, text=True
            )
            if verify.returncode != 0:
                raise RuntimeError(
                    f"{count} shard(s): the copy does not verify: {verify.stdout}{verify.stderr}"
                )
            if count > 1:
                again = subprocess.run(
                    [djarchive, "download", "--json", "bench-m", "v1", str(target)],
                    env=env,
                    capture_output=True,
                    text=True,
                )
                fetched = json.loads(again.stdout)["fetched_files"]
                if again.returncode != 0 or fetched:
                    raise RuntimeError(f"{count} shards: a plain download after them fetched {fetched}")
            checks.append(f"run {number + 1}, {count} process(es): {verify.stdout.strip()}")
            shutil.rmtree(target, ignore_errors=True)
    rows = {
        count: {
            "jobs_each": TOTAL_JOBS // count,
            "median_s": median(values),
            "min_s": min(values),
            "max_s": max(values),
            "cpu_s": median(cpu[count]),
            "n": len(values),
        }
        for count, values in times.items()
    }
    base = rows[1]["median_s"] if 1 in rows else None
    for row in rows.values():
        row["x_one_process"] = row["median_s"] / base if base else None
    return {
        "rows": rows,
        "files": data.files,
        "bytes": data.bytes,
        "checks": checks,
        "samples": times,
        "cpu": cpu,
    }


# -- report --------------------------------------------------------------------------------------


def render(info: dict, server: str, results: dict) -> str:
    lines = [
        f"Machine: {info['nproc']} cores, {info['cpu']}, Linux {info['kernel']}, Python {info['python']}; "
        f"date {info['date']}; server {server}.",
        "",
    ]
    if "ttfb" in results:
        ttfb = results["ttfb"]
        lines += [
            "| 1 MiB ranged read of a 256 MiB object | median ms | p90 ms | reads |",
            "|---|---:|---:|---:|",
        ]
        for name, row in ttfb["rows"].items():
            lines.append(f"| {name} | {row['median_ms']:.1f} | {row['p90_ms']:.1f} | {row['n']} |")
        lines += [
            "",
            f"djarchive:// warm / raw 1 MiB GET: **{ttfb['ratio_warm_to_raw_1mib']:.2f} x** (target <= 1.5); "
            f"warm / raw first byte: {ttfb['ratio_warm_to_raw_first_byte']:.2f} x; "
            f"cold / raw 1 MiB GET: {ttfb['ratio_cold_to_raw_1mib']:.2f} x.",
            "",
        ]
    if "dask" in results:
        dask_result = results["dask"]
        lines += [
            f"| dask.dataframe.read_csv, {dask_result['files']} files, {dask_result['bytes'] / MiB:.0f} MiB, "
            "sum of 2 columns + row count | median s | min s | max s | runs |",
            "|---|---:|---:|---:|---:|",
        ]
        for name, row in dask_result["rows"].items():
            lines.append(
                f"| {name} | {row['median_s']:.2f} | {row['min_s']:.2f} | {row['max_s']:.2f} | {row['n']} |"
            )
        ratio = dask_result["ratio_djarchive_to_s3fs"]
        lines += [
            "",
            f"Same results: {dask_result['same_results']} ({dask_result['result']}); "
            + (
                f"djarchive:// / s3fs {dask_result['s3fs']}: **{ratio:.2f} x**."
                if ratio
                else dask_result["note"]
            ),
            "",
        ]
    if "shards" in results:
        shards = results["shards"]
        lines += [
            f"| M ({shards['files']} files, {shards['bytes'] / MiB:.0f} MiB) into one TARGET | --jobs each | "
            "median s | min s | max s | x one process | CPU s (all processes) | runs |",
            "|---|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for count, row in shards["rows"].items():
            label = "1 process (no --shard)" if count == 1 else f"{count} concurrent shard processes"
            ratio = f"{row['x_one_process']:.2f}" if row["x_one_process"] else "-"
            lines.append(
                f"| {label} | {row['jobs_each']} | {row['median_s']:.2f} | {row['min_s']:.2f} | "
                f"{row['max_s']:.2f} | {ratio} | {row['cpu_s']:.2f} | {row['n']} |"
            )
        lines += ["", "Every sharded copy verified and a plain download after it fetched nothing.", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--parts", default="ttfb,dask,shards", help="ttfb, dask, shards (default: all)")
    parser.add_argument("--server", choices=("s3rver", "moto"), default="s3rver", help="default s3rver")
    parser.add_argument("--runs", type=int, default=3, help="runs of the dask and shard parts (default 3)")
    parser.add_argument("--reads", type=int, default=40, help="ranged reads per method (default 40)")
    parser.add_argument(
        "--shards", default="1,2,4", help="shard counts (default 1,2,4; 1 is one plain process)"
    )
    args = parser.parse_args(argv)
    parts = [part.strip() for part in args.parts.split(",") if part.strip()]
    WORK.mkdir(parents=True, exist_ok=True)
    for folder in [Path(sysconfig.get_paths()["purelib"]), *(HERE.parent / "packages").glob("*/src")]:
        compileall.compile_dir(folder, quiet=2, workers=0)  # as run.py: bytecode, as pip leaves it
    info = run.machine()
    print(f"machine: {info}", flush=True)
    server: servers.Server = servers.S3rver() if args.server == "s3rver" else servers.Moto()
    if isinstance(server, servers.S3rver) and not server.executable:
        print("s3rver is not available (Node.js and npm): using moto_server", file=sys.stderr)
        server = servers.Moto()
    results: dict = {}
    with server:
        server.make_bucket()
        os.environ.update(
            {
                key: value
                for key, value in run.tool_env(server.endpoint, WORK).items()
                if key.startswith("DJARCHIVE_CLIENT_")
            }
        )
        if "ttfb" in parts:
            results["ttfb"] = bench_ttfb(server.endpoint, args.reads)
            print(json.dumps(results["ttfb"], indent=1), flush=True)
        if "dask" in parts:
            results["dask"] = bench_dask(server.endpoint, args.runs)
            print(json.dumps(results["dask"], indent=1), flush=True)
        if "shards" in parts:
            counts = [int(count) for count in args.shards.split(",")]
            results["shards"] = bench_shards(server.endpoint, args.runs, counts)
            print(json.dumps(results["shards"]["rows"], indent=1), flush=True)
        version = server.version()
    report = render(info, version, results)
    run.save_results(report, {"machine": info, "server": version, "results": results}, "fsspec-")
    return 0


if __name__ == "__main__":
    sys.exit(main())
