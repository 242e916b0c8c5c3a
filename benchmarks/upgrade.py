"""Issue 16: upgrading a local copy in place, and reusing another copy, against a cold download.

    python benchmarks/upgrade.py                      # 1,000 files, ~1 GB; 3 runs (~5 min)
    python benchmarks/upgrade.py --files 100 --mib 50 --runs 1      # a fast smoke run
    python benchmarks/run.py --upgrade ...            # the same, from the main runner

Revision A (``UA``: 1,000 files, 1000 MiB, log-normal sizes, every file below 48 MiB so below
djarchive's 64 MiB range threshold) and its successor B (``UB``: 1 % of the files changed in
place, 1 % moved to a new folder, 3 added, 3 removed; see ``generate.py``) are published with
djarchive-admin to s3rver as ``bench-up/A`` and ``bench-up/B``. Each repetition, every command a
subprocess:

1. ``cold A``: ``djarchive download bench-up A TA`` (direct to s3rver; the copy to upgrade), twice
   (TA and TA2);
2. ``cold B``: ``djarchive download bench-up B TB`` into an empty folder, direct: the reference;
   ``cold B (counted)``: the same through the counting proxy, with hashing counted (checks the
   counters: it must fetch and hash all of B);
3. ``reuse (counted)``: ``djarchive download bench-up B TR --reuse TA`` into an empty TR, through
   ``counting_proxy.py`` (which counts the response bytes of GETs of data objects) and under
   ``counted.py`` (which counts every byte fed to sha256 in the process); ``reuse``: the same
   direct and uncounted, into TR2; ``reuse --link``: the same with hard links from TA2, into TR3;
4. ``upgrade (counted)``: ``djarchive download bench-up B TA`` (TA holds A), counted as in 3;
   ``upgrade``: the same direct and uncounted on TA2;
5. ``djarchive verify bench-up B`` of every upgraded or reused copy (must pass).

The first repetition also saves ``download --dry-run``'s plan of the upgrade. Targets: fetched
bytes <= 1.02 x (changed + added bytes); hashed bytes <= fetched + moved bytes; wall <= 0.1 x cold
B; the same for reuse. Results go to ``benchmarks/.work/results/upgrade-<timestamp>.md`` and
``.json``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import generate
import run
import servers
from counting_proxy import CountingProxy
from run import Sample, run_command

HERE = Path(__file__).resolve().parent
WORK = HERE / ".work"
DATASET = "bench-up"
MiB = 1024 * 1024


def sizes_of(args: argparse.Namespace) -> dict[str, int]:
    """Bytes changed, moved, added, removed and unchanged between A and B, from the generator."""
    how = generate.upgrade_plan(args.files, args.mib)
    a = generate.plan(f"UA{args.files}x{args.mib}")
    out = {
        "changed": sum(a[i][1] for i in how["changed"]),
        "moved": sum(a[i][1] for i in how["moved"]),
        "removed": sum(a[i][1] for i in how["removed"]),
        "added": sum(size for _, size in how["added"]),
        "files changed": len(how["changed"]),
        "files moved": len(how["moved"]),
        "files removed": len(how["removed"]),
        "files added": len(how["added"]),
    }
    out["unchanged"] = sum(size for _, size in a) - out["changed"] - out["moved"] - out["removed"]
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--files", type=int, default=1000, help="files in revision A (default 1000)")
    parser.add_argument("--mib", type=int, default=1000, help="MiB in revision A (default 1000)")
    parser.add_argument("--runs", type=int, default=3, help="repetitions (default 3)")
    args = parser.parse_args(argv)
    a = generate.generate(f"UA{args.files}x{args.mib}")
    b = generate.generate(f"UB{args.files}x{args.mib}")
    delta = sizes_of(args)
    run.write_bytecode()
    info = run.machine()
    print(f"machine: {info}", flush=True)
    logs = WORK / "logs" / "upgrade"
    shutil.rmtree(logs, ignore_errors=True)
    copies = WORK / "copies" / "upgrade"
    djarchive = run.find("djarchive") or "djarchive"
    counted = [sys.executable, str(HERE / "counted.py")]
    samples: dict[str, list[Sample]] = {}
    counts: dict[str, list[dict]] = {}
    loads: list[tuple[str, str]] = []
    checks: list[str] = []
    plan_text = ""

    def load(label: str) -> None:
        text = " ".join(Path("/proc/loadavg").read_text().split()[:3])
        loads.append((label, text))
        print(f"-- load average {text} ({label})", flush=True)

    def timed(label: str, cmd: list[str], env: dict[str, str]) -> Sample:
        sample = run_command(cmd, env, WORK, logs / f"{label.split(' ')[0]}.log")
        samples.setdefault(label, []).append(sample)
        flag = "" if sample.ok else f"  FAILED: {sample.note}"
        print(
            f"  {label:22} {sample.wall:8.2f} s wall {sample.cpu:7.2f} s cpu {sample.rss_mb:7.1f} MB{flag}",
            flush=True,
        )
        return sample

    def fresh(path: Path) -> Path:
        shutil.rmtree(path, ignore_errors=True)
        return path

    server = servers.S3rver()
    server.start()
    started = time.time()
    try:
        version = server.version()
        print(f"server: {version} at {server.endpoint}", flush=True)
        for data, revision in ((a, "A"), (b, "B")):
            how = run.publish(server.endpoint, data, DATASET, revision, use_admin=True)
            print(
                f"published {revision} ({data.files} files, {data.bytes / MiB:.0f} MiB) with {how}",
                flush=True,
            )
        direct = run.tool_env(server.endpoint, WORK)
        with CountingProxy(server.port) as proxy:
            via_proxy = run.tool_env(proxy.endpoint, WORK)

            def counted_run(label: str, args_: list[str]) -> None:
                out = logs / "hashed.json"
                proxy.counts.take()
                sample = timed(label, [*counted, str(out), *args_], via_proxy)
                served = proxy.counts.take()
                hashed = json.loads(out.read_text())["hashed"] if out.exists() else {}
                counts.setdefault(label, []).append({"served": served, "hashed": hashed, "ok": sample.ok})
                ours = sum(n for site, n in hashed.items() if site.startswith("djarchive"))
                print(
                    f"  {'':22} served GET data {served['bytes'].get('GET data', 0) / MiB:.1f} MiB "
                    f"in {served['requests'].get('GET data', 0)} GETs; hashed {ours / MiB:.1f} MiB",
                    flush=True,
                )

            for rep in range(args.runs):
                load(f"run {rep + 1}")
                ta, ta2 = fresh(copies / "TA"), fresh(copies / "TA2")
                tb, tr, tr2 = fresh(copies / "TB"), fresh(copies / "TR"), fresh(copies / "TR2")
                tr3 = fresh(copies / "TR3")
                timed("cold A", [djarchive, "download", "-q", DATASET, "A", str(ta)], direct)
                timed("cold A", [djarchive, "download", "-q", DATASET, "A", str(ta2)], direct)
                timed("cold B", [djarchive, "download", "-q", DATASET, "B", str(tb)], direct)
                fresh(tb)
                counted_run("cold B (counted)", ["download", "-q", DATASET, "B", str(tb)])
                fresh(tb)
                if rep == 0:
                    result = subprocess.run(
                        [djarchive, "download", DATASET, "B", str(ta), "--dry-run"],
                        env=direct,
                        capture_output=True,
                        text=True,
                    )
                    plan_text = result.stdout + result.stderr
                    (logs / "upgrade-dry-run.txt").write_text(plan_text)
                counted_run("reuse (counted)", ["download", "-q", DATASET, "B", str(tr), "--reuse", str(ta)])
                timed(
                    "reuse",
                    [djarchive, "download", "-q", DATASET, "B", str(tr2), "--reuse", str(ta2)],
                    direct,
                )
                timed(
                    "reuse --link",
                    [djarchive, "download", "-q", DATASET, "B", str(tr3), "--reuse", str(ta2), "--link"],
                    direct,
                )
                counted_run("upgrade (counted)", ["download", "-q", DATASET, "B", str(ta)])
                timed("upgrade", [djarchive, "download", "-q", DATASET, "B", str(ta2)], direct)
                for copy in (ta, ta2, tr, tr2, tr3):
                    result = subprocess.run(
                        [djarchive, "verify", "-q", DATASET, "B", str(copy)],
                        env=direct,
                        capture_output=True,
                        text=True,
                    )
                    if result.returncode != 0:
                        checks.append(
                            f"run {rep + 1}: `djarchive verify {DATASET} B {copy.name}` exited "
                            f"{result.returncode}: {(result.stdout + result.stderr).strip()[-300:]}"
                        )
                for copy in (ta, ta2, tr, tr2, tr3):
                    fresh(copy)
            load("end")
    finally:
        server.stop()
    report = render(args, info, version, delta, samples, counts, loads, checks, plan_text, a, b, started)
    run.save_results(
        report,
        {
            "machine": info,
            "server": version,
            "args": vars(args),
            "delta": delta,
            "loads": loads,
            "samples": {k: [asdict(s) for s in v] for k, v in samples.items()},
            "counts": counts,
            "checks": checks,
            "plan": plan_text,
        },
        "upgrade-",
    )
    return 0


def render(args, info, version, delta, samples, counts, loads, checks, plan_text, a, b, started) -> str:
    def med(label: str, what: str = "wall") -> float | None:
        rows = samples.get(label, [])
        return statistics.median(getattr(s, what) for s in rows) if rows and all(s.ok for s in rows) else None

    def served(label: str) -> list[int]:
        return [c["served"]["bytes"].get("GET data", 0) for c in counts.get(label, [])]

    def hashed(label: str) -> list[int]:
        return [
            sum(n for site, n in c["hashed"].items() if site.startswith("djarchive"))
            for c in counts.get(label, [])
        ]

    need = delta["changed"] + delta["added"]
    lines = [
        f"## Upgrade (issue 16) {info['date']}",
        "",
        f"Machine: {info['nproc']} cores, {info['cpu']}, Linux {info['kernel']}, Python {info['python']}. "
        f"Server: {version}. Runs: {args.runs} (median wall and CPU, maximum RSS). "
        f"Took {(time.time() - started) / 60:.0f} min.",
        "",
        "Load average (1, 5, 15 min): " + "; ".join(f"{label}: {value}" for label, value in loads),
        "",
        f"A: {a.files} files, {a.bytes / MiB:.1f} MiB; B: {b.files} files, {b.bytes / MiB:.1f} MiB. "
        f"B vs A: {delta['files changed']} changed ({delta['changed'] / MiB:.1f} MiB), "
        f"{delta['files moved']} moved ({delta['moved'] / MiB:.1f} MiB), "
        f"{delta['files added']} added ({delta['added'] / MiB:.1f} MiB), "
        f"{delta['files removed']} removed ({delta['removed'] / MiB:.1f} MiB); "
        f"changed + added = {need / MiB:.2f} MiB ({need} bytes).",
        "",
        "| run | wall s (median) | CPU s | peak RSS MB | x cold B (wall) | GET data bytes served "
        "(per run) | bytes hashed (per run) | runs |",
        "|---|---:|---:|---:|---:|---|---|---:|",
    ]
    cold = med("cold B")
    for label, rows in samples.items():
        wall = med(label)
        ratio = f"{wall / cold:.3f}" if wall is not None and cold else "-"
        got = served(label)
        hashes = hashed(label)
        shown = "FAILED" if wall is None else f"{wall:.2f}"
        lines.append(
            f"| {label} | {shown} | {statistics.median(s.cpu for s in rows):.2f} "
            f"| {max(s.rss_mb for s in rows):.0f} | {ratio} | {', '.join(str(n) for n in got) or '-'} "
            f"| {', '.join(str(n) for n in hashes) or '-'} | {len(rows)} |"
        )
    lines += ["", "### Targets (issue 16)", ""]

    def check(label: str, value: float | None, limit: float, detail: str) -> None:
        if value is None:
            lines.append(f"- {label}: not measured")
            return
        verdict = "met" if value <= limit else "NOT met"
        lines.append(f"- {label}: {value:.4f} (target <= {limit:g}; {detail}) **{verdict}**")

    for kind in ("upgrade", "reuse"):
        got, hashes = served(f"{kind} (counted)"), hashed(f"{kind} (counted)")
        if got:
            worst = max(got)
            check(
                f"{kind}: fetched / (changed + added)",
                worst / need,
                1.02,
                f"worst run {worst} bytes vs {need}",
            )
            ratios = [h / (g + delta["moved"]) for h, g in zip(hashes, got, strict=True)]
            i = max(range(len(ratios)), key=ratios.__getitem__)
            check(
                f"{kind}: hashed / (fetched + moved)",
                ratios[i],
                1.0,
                f"worst run {hashes[i]} bytes hashed vs {got[i]} + {delta['moved']}",
            )
        for label in (kind, f"{kind} (counted)", *(["reuse --link"] if kind == "reuse" else [])):
            wall = med(label)
            check(
                f"{kind}: wall / cold B ({label}, median)",
                wall / cold if wall is not None and cold else None,
                0.1,
                f"{wall:.2f} s vs {cold:.2f} s" if wall is not None and cold else "",
            )
    cold_got, cold_hashed = served("cold B (counted)"), hashed("cold B (counted)")
    lines += [
        "",
        f"Counter check, cold B through the proxy: served {cold_got} bytes of data objects, hashed "
        f"{cold_hashed} (B holds {b.bytes}).",
    ]
    sites: dict[str, int] = {}
    for label in ("upgrade (counted)", "reuse (counted)"):
        for c in counts.get(label, [])[:1]:
            sites = {site: n for site, n in c["hashed"].items() if n}
            lines.append(f"Hashed by call site, first {label}: {json.dumps(sites)}")
    lines += ["", *(f"Check failed: {text}" for text in checks)]
    if plan_text:
        tail = [line for line in plan_text.splitlines() if line.strip()][-8:]
        lines += ["", "The upgrade's `--dry-run` (last lines):", "", "```", *tail, "```"]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
