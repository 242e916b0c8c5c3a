"""Issue 27: djarchive on libcurl and on minio, side by side, against s5cmd on the same s3rver.

    python benchmarks/transports.py [--rounds 3] [--parts s,l,upload,rerun] [--network loopback,latency]

Starts s3rver (benchmarks/servers.py), publishes S (2,000 x 16 KiB) and L (4 x 256 MiB) with
djarchive-admin, then runs every measurement ``--rounds`` times, the tools taking turns within
each round, each going first in turn, after ``sync`` (so a burst of load on the shared machine,
or the writeback of what the last one wrote, hits all of them alike), on loopback and
through the latency proxy (20 ms each way), each command in its own process, timed by
``run.run_command`` (wall, and the child's CPU: user + system from wait4):

* **download** S and L into an empty folder: ``djarchive download -q`` with
  ``DJARCHIVE_TRANSPORT=curl``, the same with ``=minio``, and ``s5cmd cp`` followed by
  ``hashcheck.py`` (hashlib over the manifest, one thread per core): the floor, "s5cmd + hashlib";
* **rerun**: the same ``djarchive download`` again over the complete copy (L: the no-op re-run,
  against the cold download of the same round);
* **upload** S: ``djarchive-admin upload -q`` (hash, PUT with digests, publish) into a new
  revision with each transport (``--no-delta``: every file sent, none copied from the revisions of
  the earlier rounds), against ``s5cmd cp`` of the folder and of its manifest.

Medians per tool go to a table with issue 27's ratios and targets; the raw samples and the load
average go to ``.work/results/transports-<stamp>.md`` and ``.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import generate  # noqa: E402
import run  # noqa: E402
import servers  # noqa: E402

WORK = servers.WORK
DATASETS = {"S": "bench-s", "L": "bench-l"}
TRANSPORTS = ("curl", "minio")
Command = list[str]


def _load() -> str:
    return " ".join(f"{value:.1f}" for value in os.getloadavg())


class Bench:
    """The runs of one invocation: samples by (network, phase, shape, tool)."""

    def __init__(self, endpoint: str, rounds: int):
        self.endpoint, self.rounds = endpoint, rounds
        self.samples: dict[tuple[str, str, str, str], list[run.Sample]] = {}
        self.loads: list[str] = []
        self.logs = WORK / "logs" / "transports"
        self.copies = WORK / "copies" / "transports"
        self.djarchive = run.find("djarchive") or "djarchive"
        self.admin = run.find("djarchive-admin") or "djarchive-admin"
        self.s5cmd = run.find("s5cmd") or "s5cmd"
        self.uploads = 0

    def env(self, endpoint: str, transport: str | None = None) -> dict[str, str]:
        env = run.tool_env(endpoint, WORK)
        if transport:
            env["DJARCHIVE_TRANSPORT"] = transport
        return env

    def time(self, key: tuple[str, str, str, str], steps: list[Command], env: dict[str, str]) -> run.Sample:
        os.sync()  # what the last command wrote goes to disk now, not during this one
        sample = run.Sample()
        for step in steps:
            sample.add(run.run_command(step, env, WORK, self.logs / f"{'-'.join(key)}.log".replace(" ", "_")))
        self.samples.setdefault(key, []).append(sample)
        print(
            f"  {'/'.join(key):44s} wall {sample.wall:6.2f} s  cpu {sample.cpu:6.2f} s"
            f"{'' if sample.ok else '  FAILED ' + sample.note}",
            flush=True,
        )
        return sample

    def fresh(self, name: str) -> Path:
        dest = self.copies / name
        if dest.exists():
            shutil.rmtree(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        return dest

    def download(self, network: str, endpoint: str, shape: str, data: generate.Dataset, rerun: bool) -> None:
        for tool in _turn(["curl", "minio", "s5cmd"], len(self.loads)):
            if tool == "s5cmd":
                self._s5cmd_download(network, endpoint, shape, data)
                continue
            dest = self.fresh(f"{shape}-{tool}")
            command = [self.djarchive, "download", "-q", DATASETS[shape], "v1", str(dest)]
            env = self.env(endpoint, tool)
            self.time((network, "download", shape, f"djarchive {tool}"), [command], env)
            if rerun:
                self.time((network, "rerun", shape, f"djarchive {tool}"), [command], env)
            shutil.rmtree(dest, ignore_errors=True)

    def _s5cmd_download(self, network: str, endpoint: str, shape: str, data: generate.Dataset) -> None:
        dataset = DATASETS[shape]
        dest = self.fresh(f"{shape}-s5cmd")
        s5 = [self.s5cmd, "--endpoint-url", endpoint]
        steps = [
            [*s5, "cp", f"s3://{servers.BUCKET}/{dataset}/v1/*", f"{dest}/"],
            [sys.executable, str(HERE / "hashcheck.py"), str(data.manifest), str(dest)],
        ]
        env = self.env(endpoint)
        self.time((network, "download", shape, "s5cmd"), steps[:1], env)
        self.time((network, "download", shape, "hashlib"), steps[1:], env)
        both = run.Sample()
        both.add(self.samples[(network, "download", shape, "s5cmd")][-1])
        both.add(self.samples[(network, "download", shape, "hashlib")][-1])
        self.samples.setdefault((network, "download", shape, "s5cmd + hashlib"), []).append(both)
        shutil.rmtree(dest, ignore_errors=True)

    def upload(self, network: str, endpoint: str, data: generate.Dataset) -> None:
        source = WORK / "upload-src" / "transports-S"
        if not source.exists():
            run._link_copy(data.root, source)
        for tool in _turn(["curl", "minio", "s5cmd"], len(self.loads)):
            self.uploads += 1
            if tool == "s5cmd":
                self._s5cmd_upload(network, endpoint, data, source)
                continue
            # --no-delta: every file sent, as s5cmd sends them (not copied from the earlier rounds')
            command = [self.admin, "upload", "-q", "--no-delta", "bench-up", f"r{self.uploads}", str(source)]
            env = self.env(endpoint, tool)
            self.time((network, "upload", "S", f"djarchive {tool}"), [command], env)

    def _s5cmd_upload(self, network: str, endpoint: str, data: generate.Dataset, source: Path) -> None:
        s5 = [self.s5cmd, "--endpoint-url", endpoint]
        prefix = f"s3://{servers.BUCKET}/bench-up/r{self.uploads}/"
        steps = [
            [*s5, "cp", f"{source}/*", prefix],
            [*s5, "cp", str(data.manifest), prefix + run.MANIFEST_NAME],
        ]
        self.time((network, "upload", "S", "s5cmd"), steps, self.env(endpoint))

    def median(self, key: tuple[str, str, str, str], what: Callable[[run.Sample], float]) -> float:
        return statistics.median(what(sample) for sample in self.samples.get(key, []) or [run.Sample()])


def _turn(tools: list[str], round_number: int) -> list[str]:
    """``tools`` in the order of round ``round_number`` (1-based): each goes first in turn, so
    none always runs after the same one (the page cache's writeback of a large download, say)."""
    shift = (round_number - 1) % len(tools)
    return tools[shift:] + tools[:shift]


def report(bench: Bench, networks: list[str], notes: list[str]) -> str:
    lines = ["# djarchive on libcurl and on minio against s5cmd (issue 27)", ""]
    lines += [f"- {note}" for note in notes]
    lines += [f"- load average at each round's start: {'; '.join(bench.loads)}", ""]
    lines += ["| network | phase | shape | tool | wall s (runs) | cpu s (runs) | median wall | median cpu |"]
    lines += ["| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for (network, phase, shape, tool), samples in bench.samples.items():
        walls = " ".join(f"{s.wall:.2f}" for s in samples)
        cpus = " ".join(f"{s.cpu:.2f}" for s in samples)
        wall = statistics.median(s.wall for s in samples)
        cpu = statistics.median(s.cpu for s in samples)
        failed = "" if all(s.ok for s in samples) else " (FAILED)"
        lines.append(f"| {network} | {phase} | {shape} | {tool}{failed} | {walls} | {cpus} ")
        lines[-1] += f"| {wall:.2f} | {cpu:.2f} |"
    lines += ["", "## Issue 27's targets (medians)", ""]
    lines += ["| target | curl | minio | limit |", "| --- | --- | --- | --- |"]

    def wall(sample: run.Sample) -> float:
        return sample.wall

    def cpu(sample: run.Sample) -> float:
        return sample.cpu

    def ratios(network: str, phase: str, shape: str, floor_tool: str, what: Callable[..., float]) -> str:
        floor = bench.median((network, phase, shape, floor_tool), what)
        if not floor:
            return ""
        found = [bench.median((network, phase, shape, f"djarchive {t}"), what) / floor for t in TRANSPORTS]
        return " | ".join(f"{ratio:.2f}" for ratio in found)

    for network in networks:
        for shape, limit in (("S", 0.8), ("L", 0.9)):
            found = ratios(network, "download", shape, "s5cmd + hashlib", wall)
            if found:
                name = f"download {shape}, {network}: wall / (s5cmd + hashlib)"
                lines.append(f"| {name} | {found} | ≤ {limit} |")
        found = ratios(network, "download", "L", "s5cmd + hashlib", cpu)
        if found:
            lines.append(f"| L client CPU, {network}: / (s5cmd's + hashlib's) | {found} | ≤ 1.0 |")
        found = ratios(network, "upload", "S", "s5cmd", wall)
        if found:
            lines.append(f"| upload S, {network}: wall / s5cmd | {found} | ≤ 0.9 |")
        cold = [bench.median((network, "download", "L", f"djarchive {t}"), wall) for t in TRANSPORTS]
        again = [bench.median((network, "rerun", "L", f"djarchive {t}"), wall) for t in TRANSPORTS]
        if all(cold) and all(again):
            found = " | ".join(f"{rerun / first:.3f}" for rerun, first in zip(again, cold, strict=True))
            lines.append(f"| no-op re-run L, {network}: wall / cold | {found} | ≤ 0.15 |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--parts", default="s,l,upload,rerun", help="s, l, upload, rerun (with l)")
    parser.add_argument("--network", default="loopback,latency")
    parser.add_argument("--delay", type=float, default=0.020, help="seconds each way through the proxy")
    parser.add_argument("--report", type=Path, help="render the tables again from a saved .json (no run)")
    args = parser.parse_args(argv)
    if args.report:
        print(rerender(args.report))
        return 0
    parts = set(args.parts.split(","))
    networks = args.network.split(",")
    run.write_bytecode()
    shapes = [shape for shape in ("S", "L") if shape.lower() in parts or (shape == "S" and "upload" in parts)]
    data = {shape: generate.generate(shape) for shape in shapes}
    notes = [
        f"machine: {run.machine()}",
        f"s5cmd: {run._version([run.find('s5cmd') or 's5cmd', 'version'])}",
        f"pycurl: {run._module_version('pycurl')}",
        f"rounds: {args.rounds}; tools alternate within each round",
    ]
    with servers.S3rver() as server:
        notes.append(f"server: {server.version()}")
        for shape in shapes:
            how = run.publish(server.endpoint, data[shape], DATASETS[shape], "v1", use_admin=False)
            notes.append(f"{shape} published by {how}")
        bench = Bench(server.endpoint, args.rounds)
        for number in range(1, args.rounds + 1):
            bench.loads.append(_load())
            print(f"round {number} (load {bench.loads[-1]})", flush=True)
            for network in networks:
                proxy = servers.LatencyProxy(server.port, args.delay) if network == "latency" else None
                with proxy if proxy is not None else _nothing():
                    endpoint = proxy.endpoint if proxy is not None else server.endpoint
                    if "s" in parts:
                        bench.download(network, endpoint, "S", data["S"], rerun=False)
                    if "l" in parts:
                        bench.download(network, endpoint, "L", data["L"], rerun="rerun" in parts)
                    if "upload" in parts:
                        bench.upload(network, endpoint, data["S"])
    text = report(bench, networks, notes)
    raw = {"/".join(key): [vars(sample) for sample in samples] for key, samples in bench.samples.items()}
    run.save_results(text, {"notes": notes, "loads": bench.loads, "samples": raw}, prefix="transports-")
    return 0


def rerender(saved: Path) -> str:
    """The report of a saved run, its "s5cmd + hashlib" samples summed again round by round."""
    data = json.loads(saved.read_text())
    bench = Bench("", 0)
    bench.loads = data["loads"]
    for name, samples in data["samples"].items():
        network, phase, shape, tool = name.split("/")
        if tool != "s5cmd + hashlib":
            bench.samples[(network, phase, shape, tool)] = [run.Sample(**sample) for sample in samples]
    for (network, phase, shape, tool), samples in list(bench.samples.items()):
        if tool == "s5cmd" and phase == "download":
            hashed = bench.samples[(network, phase, shape, "hashlib")]
            both = []
            for one, other in zip(samples, hashed, strict=True):
                summed = run.Sample()
                summed.add(one)
                summed.add(other)
                both.append(summed)
            bench.samples[(network, phase, shape, "s5cmd + hashlib")] = both
    networks = sorted({key[0] for key in bench.samples}, key=["loopback", "latency"].index)
    return report(bench, networks, data["notes"])


class _nothing:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc_info: object) -> None:
        return None


if __name__ == "__main__":
    sys.exit(main())
