"""Profile ``djarchive download`` with py-spy and say where the time goes.

    python benchmarks/profile_download.py                     # S and L on s3rver, loopback, default --jobs
    python benchmarks/profile_download.py --shapes S --jobs 16,64 --latency

Each case runs ``py-spy record`` twice on a cold download: once sampling every thread that is
running (``--threads``, idle threads left out: where the CPU goes) and once with ``--gil``
(only the thread holding the GIL: what serialises the workers). The collapsed stacks are
summarised by category, from the innermost Python frame and its source line: hashing, file
I/O, socket reads (http.client/urllib3 response), urllib3 request/connection handling, minio
request building and signing, the thread pool, imports and start-up, djarchive's own code.
Outputs (raw stacks, speedscope JSON, summary) go to benchmarks/.work/profiles/.
"""

from __future__ import annotations

import argparse
import collections
import linecache
import re
import shutil
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import generate
import run
import servers

OUT = run.WORK / "profiles"
FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^()]*):(?P<line>\d+)\)$")

_FILE_IO = re.compile(
    r"\b(pwrite|pread|handle\.write|os\.replace|open\(|posix_fallocate|flush|unlink|mkdir|lstat|fsync)"
)
_HTTP_READS = {"read", "_safe_read", "readinto", "_read_chunked", "_readinto_chunked"}


def _category(func: str, path: str, source: str) -> str | None:
    """The category of one frame (function, file, source line), or None to look at its caller."""
    if "digest.update" in source or "hashlib" in source or func == "hash_file":
        return "hashing (sha256)"
    if _FILE_IO.search(source):
        return "file I/O (write, pwrite, pread, open, rename)"
    if path.endswith(("socket.py", "ssl.py")) or (path.endswith("http/client.py") and func in _HTTP_READS):
        return "socket reads (http.client/ssl/socket)"
    if "urllib3" in path:
        return "urllib3 response read" if "response" in path else "urllib3 request/connection pool"
    if path.endswith("http/client.py") or "email/" in path:
        return "http.client request/headers"
    if "minio/signer" in path or path.endswith("hmac.py"):
        return "minio signing (signer.py, hmac)"
    if "minio/" in path:
        return "minio request building (api.py, helpers)"
    if path.endswith(("threading.py", "queue.py")) or "concurrent/futures" in path:
        return "thread pool and locks (concurrent.futures, threading, queue)"
    if "importlib" in path or func == "<module>":
        return "imports and start-up"
    if "djarchive" in path:
        return "djarchive: other"
    return None


def categorize(stack: list[str]) -> str:
    """The category of a stack: the first frame from the innermost that has one."""
    for frame in reversed(stack):
        match = FRAME.match(frame)
        if not match:
            continue
        path, line = match["file"], int(match["line"])
        source = linecache.getline(path, line).strip() if Path(path).is_file() else ""
        category = _category(match["func"], path, source)
        if category:
            return category
    return "other"


def summarize(raw: Path, top: int = 15) -> str:
    """Categories and the costliest innermost lines of one raw py-spy recording."""
    categories: collections.Counter[str] = collections.Counter()
    leaves: collections.Counter[str] = collections.Counter()
    total = idle = 0
    for line in raw.read_text(errors="replace").splitlines():
        stack_text, _, count_text = line.rpartition(" ")
        if not count_text.isdigit():
            continue
        count = int(count_text)
        stack = [frame for frame in stack_text.split(";") if not frame.startswith(("thread (", "process "))]
        if not stack:
            idle += count  # a thread with no Python frame: py-spy's view of the main thread blocked in a wait
            continue
        total += count
        categories[categorize(stack)] += count
        leaf = stack[-1] if stack else "?"
        match = FRAME.match(leaf)
        if match:
            short = re.sub(r"^.*/(site-packages|lib/python3\.\d+|src)/", "", match["file"])
            source = linecache.getline(match["file"], int(match["line"])).strip()
            leaf = f"{match['func']} ({short}:{match['line']}) `{source[:70]}`"
        leaves[leaf] += count
    lines = [f"{total} samples with a Python stack ({idle} without one left out) at 200 Hz"]
    for name, count in categories.most_common():
        lines.append(f"  {100 * count / max(total, 1):5.1f} %  {name}")
    lines.append("  innermost lines:")
    for leaf, count in leaves.most_common(top):
        lines.append(f"  {100 * count / max(total, 1):5.1f} %  {leaf}")
    return "\n".join(lines)


def record(
    pyspy: str, cmd: list[str], out: Path, env: dict[str, str], *, gil: bool, fmt: str = "raw"
) -> bool:
    argv = [pyspy, "record", "--rate", "200", "--format", fmt, "-o", str(out), "--threads", "--subprocesses"]
    if gil:
        argv.append("--gil")
    result = subprocess.run([*argv, "--", *cmd], env=env, capture_output=True, text=True)
    if result.returncode != 0:
        print(f"py-spy failed ({result.returncode}): {result.stderr.strip()[-400:]}", file=sys.stderr)
    return result.returncode == 0 and out.exists()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--shapes", default="S,L")
    parser.add_argument("--jobs", default="", help="comma-separated --jobs values (default: djarchive's)")
    parser.add_argument("--latency", action="store_true", help="through the 20 ms latency proxy")
    parser.add_argument("--server", choices=("s3rver", "moto"), default="s3rver")
    args = parser.parse_args(argv)
    pyspy = run.find("py-spy")
    djarchive = run.find("djarchive")
    if not pyspy or not djarchive:
        print("needs py-spy (pip install py-spy) and djarchive installed", file=sys.stderr)
        return 1
    OUT.mkdir(parents=True, exist_ok=True)
    shapes = [s.strip().upper() for s in args.shapes.split(",") if s.strip()]
    jobs_list = [int(j) for j in args.jobs.split(",") if j.strip()] or [0]
    server = servers.S3rver() if args.server == "s3rver" else servers.Moto()
    report = []
    with server:
        for shape in shapes:
            data = generate.generate(shape)
            run.publish(server.endpoint, data, f"bench-{shape.lower()}", run.REVISION, use_admin=False)
        proxy = servers.LatencyProxy(server.port, 0.020) if args.latency else None
        if proxy:
            proxy.__enter__()
        try:
            endpoint = proxy.endpoint if proxy else server.endpoint
            env = run.tool_env(endpoint, run.WORK)
            for shape in shapes:
                for jobs in jobs_list:
                    dest = run.WORK / "copies" / "profile"
                    extra = ["--jobs", str(jobs)] if jobs else []
                    dataset = f"bench-{shape.lower()}"
                    cmd = [djarchive, "download", "-q", *extra, dataset, run.REVISION, str(dest)]
                    name = f"{shape}-j{jobs or 'default'}{'-latency' if proxy else ''}"
                    for gil in (False, True):
                        shutil.rmtree(dest, ignore_errors=True)
                        raw = OUT / f"{name}{'-gil' if gil else ''}.txt"
                        if record(pyspy, cmd, raw, env, gil=gil):
                            title = f"### {name}: {'GIL holder (--gil)' if gil else 'running threads'}"
                            report += [title, summarize(raw), ""]
                            print(report[-3], report[-2], sep="\n", flush=True)
                    shutil.rmtree(dest, ignore_errors=True)
                    record(pyspy, cmd, OUT / f"{name}.speedscope.json", env, gil=False, fmt="speedscope")
                    shutil.rmtree(dest, ignore_errors=True)
        finally:
            if proxy:
                proxy.__exit__()
    (OUT / "summary.md").write_text("\n".join(report), encoding="utf-8")
    print(f"saved {OUT}/summary.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
