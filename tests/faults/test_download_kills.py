"""SIGKILL a download at random moments: no wrong file at a final name, and the next run completes.

Five kills at moments drawn with a fixed seed, one in each fifth of a calibrated run (from the
moment the download takes its lock to its exit), on ~100 files of which two are fetched in
byte ranges. Odd trials kill the real command line, even ones a script calling the API with
small ranges (the command line has no part-size option). The downloads go through the fault
proxy with a small delay per request only, so that a run lasts long enough to be hit anywhere.
"""

from __future__ import annotations

import json
import os
import random
import signal
import time
from functools import partial
from pathlib import Path

import pytest

from djarchive_client import client
from djarchive_client.cli import main
from tests.faults.proxy import Request
from tests.faults.support import SMALL_PARTS, KiB, MiB, dataset, popen
from tests.helpers import part_files, read_tree

FILES = dataset(98, 6 * KiB, big={"big/a.bin": 1024 * KiB + 3, "big/b.bin": 700 * KiB})
RANGED_SCRIPT = (
    "import sys\n"
    "from djarchive_client import client\n"
    "print(client().download('ds', '1', sys.argv[1], create_target=True, jobs=4, "
    f"part_size={SMALL_PARTS['part_size']}, multipart_threshold={SMALL_PARTS['multipart_threshold']}))\n"
)


def start(archive, target: Path, trial: int):
    if trial % 2:
        args = ["-m", "djarchive_client.cli", "download", "ds", "1", str(target), "--jobs", "4"]
    else:
        args = ["-c", RANGED_SCRIPT, str(target)]
    return popen(args, env=archive.client_env)


@pytest.fixture
def slowed(archive, via_proxy):
    archive.publish("ds", "1", FILES)
    return archive, via_proxy(delay=0.01)


def wait_for(condition, timeout: float = 30.0, interval: float = 0.002) -> float:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(interval)
    return time.monotonic()


def placed_count(target: Path) -> int:
    """How many files are at their final names (a cheap count, no reading)."""
    if not target.exists():
        return 0
    return sum(1 for path in target.rglob("*.bin") if not path.name.startswith(".djarchive-"))


def due(moment: float, target: Path) -> bool:
    """Whether to kill now: the moment has come, or the run is about to end anyway."""
    return time.monotonic() >= moment or placed_count(target) >= 0.95 * len(FILES)


def calibrate(archive, target: Path, trial: int) -> tuple[float, float]:
    """(seconds until the lock is taken, seconds of transfer after it) of a full run like ``trial``."""
    started = time.monotonic()
    process = start(archive, target, trial)
    locked = wait_for(lambda: (target / ".djarchive" / "lock").exists()) - started
    _, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    assert read_tree(target) == FILES
    return locked, time.monotonic() - started - locked


@pytest.mark.slow
def test_five_sigkills_then_resume(slowed, tmp_path):
    archive, proxy = slowed
    locked, transfer = calibrate(archive, tmp_path / "calibration", 0)
    rng = random.Random(20240607)
    outcomes = []
    for trial in range(5):
        proxy.delay = 0.01
        moment = locked + (trial + rng.random()) / 5 * 0.9 * transfer  # in the trial-th fifth of the run
        target = tmp_path / f"trial{trial}"
        started = time.monotonic()
        process = start(archive, target, trial)
        # Kill at the moment drawn, or just before the end should this run be quicker than the calibration.
        wait_for(partial(due, started + moment, target))
        process.send_signal(signal.SIGKILL)
        process.communicate(timeout=30)
        placed = read_tree(target) if target.exists() else {}
        leftovers = part_files(target)
        outcomes.append((process.returncode, len(placed), len(leftovers)))
        for subpath, data in placed.items():
            assert data == FILES[subpath], (
                f"trial {trial}: {subpath} at its final name differs from the manifest"
            )
        assert {path.name for path in tmp_path.iterdir()} <= {
            "home",
            "cwd",
            "calibration",
        } | {f"trial{number}" for number in range(trial + 1)}  # nothing written beside the targets

        # The next run completes, fetching only what is missing, and the copy verifies.
        proxy.delay = 0.0
        assert main(["download", "ds", "1", str(target), "-q"]) == 0
        assert read_tree(target) == FILES, f"trial {trial}"
        assert part_files(target) == []
        assert main(["verify", "ds", "1", str(target), "-q"]) == 0

    assert all(code == -signal.SIGKILL for code, _, _ in outcomes), outcomes
    assert any(0 < placed < len(FILES) for _, placed, _ in outcomes), (
        f"no kill landed mid-download: {outcomes}"
    )
    assert any(parts for _, _, parts in outcomes), f"no kill left a file half-written: {outcomes}"


@pytest.mark.slow
def test_a_kill_between_ranges_of_a_large_file(archive, via_proxy, tmp_path):
    """Kill when part of a large file's ranges are written: the partial file is kept beside its
    journal, never at the final name; the next run completes the file and leaves nothing behind."""
    files = {"big.bin": os.urandom(2048 * KiB), "small.bin": b"small"}
    archive.publish("ds", "1", files)

    def hold_later_ranges(request: Request) -> float:  # the first ranges get through, no others
        first = request.header("range").removeprefix("bytes=").partition("-")[0]
        return 30.0 if first.isdigit() and int(first) >= 4 * 64 * KiB else 0.0

    proxy = via_proxy(delay=hold_later_ranges)
    target = tmp_path / "t"
    process = popen(["-c", RANGED_SCRIPT, str(target)], env=archive.client_env)
    wait_for(lambda: bool(journals(target)))
    process.send_signal(signal.SIGKILL)
    process.communicate(timeout=30)
    assert not (target / "big.bin").exists()
    assert len(journals(target)) == 1
    proxy.delay = 0.0
    assert main(["download", "ds", "1", str(target), "-q"]) == 0
    assert read_tree(target) == files
    assert part_files(target) == []
    assert not list((target / ".djarchive" / "partial").iterdir())


RESUME_SCRIPT = (
    "import signal, sys\n"
    "signal.signal(signal.SIGINT, signal.default_int_handler)\n"  # Ctrl-C as in a terminal
    "from djarchive_client import client\n"
    "client().download('ds', '1', sys.argv[1], create_target=True, jobs=2, "
    "part_size=256 * 1024, multipart_threshold=512 * 1024)\n"
)


def journals(target: Path) -> list[Path]:
    folder = target / ".djarchive" / "partial"
    return list(folder.glob("*.journal")) if folder.is_dir() else []


def data_get(request: Request) -> bool:
    return request.method == "GET" and "djarchive-" not in request.path and "?" not in request.target


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGKILL], ids=["SIGINT", "SIGKILL"])
def test_a_download_interrupted_halfway_through_a_file_fetches_only_the_rest(
    archive, via_proxy, tmp_path, signum
):
    """Interrupted at about half of a large file, the next run fetches what is left of it (plus
    at most a tenth of the file: what the last journal had not recorded yet), counted by a proxy."""
    size = 24 * MiB + 11
    files = {"big.bin": os.urandom(size)}
    archive.publish("ds", "1", files)
    proxy = via_proxy(delay=0.03)
    target = tmp_path / "t"
    process = popen(["-c", RESUME_SCRIPT, str(target)], env=archive.client_env)
    wait_for(lambda: proxy.body_bytes(data_get)[1] >= size // 2, timeout=120)
    process.send_signal(signum)
    _, err = process.communicate(timeout=30)
    assert process.returncode != 0, err
    assert not (target / "big.bin").exists()
    first = proxy.body_bytes(data_get)[1]
    assert first < 0.9 * size

    proxy.delay = 0.0
    summary = client().download("ds", "1", target, jobs=2, part_size=256 * KiB, multipart_threshold=512 * KiB)

    again = proxy.body_bytes(data_get)[1] - first
    assert again <= (size - first) + 0.1 * size, (first, again)
    assert summary.ok
    assert read_tree(target) == files
    assert not list((target / ".djarchive" / "partial").iterdir())


STREAMS_SCRIPT = RESUME_SCRIPT.replace("jobs=2", "jobs=4")


def journaled(target: Path) -> list[int]:
    """The bytes each partial file's journal vouches for."""
    found = []
    for path in journals(target):
        try:
            found.append(sum(length for _, length, _ in json.loads(path.read_bytes())["ranges"]))
        except (OSError, ValueError):
            found.append(0)  # replaced while read
    return found


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGKILL], ids=["SIGINT", "SIGKILL"])
def test_large_files_fetched_in_one_stream_each_resume_after_an_interruption(
    archive, via_proxy, tmp_path, signum
):
    """With several large files, libcurl fetches each in one stream; interrupted more than
    halfway through them, each stream's partial file is kept with its journal and the next run
    (by ranges, on either transport) fetches only what the journals do not vouch for (plus at
    most a tenth of the files), counted by a proxy."""
    size = 16 * MiB + 5
    files = {f"big/{n}.bin": os.urandom(size) for n in range(4)}
    archive.publish("ds", "1", files)

    def stall(request: Request, attempt: int) -> tuple[str, float] | None:
        return ("stall", 0.6) if data_get(request) and not request.header("range") and not attempt else None

    via_proxy(rule=stall, stall_seconds=60.0)
    target = tmp_path / "t"
    env = {**archive.client_env, "DJARCHIVE_TRANSPORT": "curl"}  # streams are libcurl's
    process = popen(["-c", STREAMS_SCRIPT, str(target)], env=env)
    wait_for(lambda: sorted(journaled(target) + [0] * 4)[-4] >= 0.45 * size, timeout=120)
    process.send_signal(signum)
    _, err = process.communicate(timeout=30)
    assert process.returncode != 0, err
    assert not any((target / name).exists() for name in files)
    held = journaled(target)
    assert len(held) == 4  # one per stream, kept
    assert min(held) >= 0.45 * size, held

    counted = via_proxy()  # the next run through a new proxy, counting
    summary = client().download("ds", "1", target, jobs=4, part_size=256 * KiB, multipart_threshold=512 * KiB)

    again = counted.body_bytes(data_get)[1]
    assert again <= 4 * size - sum(held) + 0.4 * size, (held, again)
    assert summary.ok
    assert read_tree(target) == files
    assert not list((target / ".djarchive" / "partial").iterdir())
