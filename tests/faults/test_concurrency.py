"""Two downloads of the same revision into the same TARGET at once: one waits its turn (the lock)
or both complete; neither corrupts the other, and no reader ever sees a wrong file."""

from __future__ import annotations

import itertools
import re
import threading
import time

import pytest

from djarchive_client import DJArchiveClient, client
from djarchive_common.errors import LockedError
from tests.faults.proxy import Request
from tests.faults.support import MANIFEST, KiB, dataset, error_lines, popen
from tests.helpers import part_files, read_tree

FILES = dataset(60, 4 * KiB, big={"big/a.bin": 600 * KiB})
LOCKED = re.compile(
    r"djarchive: error: another djarchive process \(pid (\d+|unknown)\) is downloading into (.+); "
    r"wait for it to finish"
)


@pytest.fixture
def slowed(archive, via_proxy):
    archive.publish("ds", "1", FILES)
    via_proxy(delay=0.01)  # so that two downloads overlap for a while
    return archive


def start(archive, target) -> object:
    return popen(
        ["-m", "djarchive_client.cli", "download", "ds", "1", str(target), "--jobs", "4"],
        env=archive.client_env,
    )


def finish(process) -> tuple[int, str, str]:
    out, err = process.communicate(timeout=120)
    return process.returncode, out, err


@pytest.mark.slow
def test_two_downloads_started_together(slowed, tmp_path):
    outcomes = []
    for round_number in range(2):
        target = tmp_path / f"t{round_number}"
        first, second = start(slowed, target), start(slowed, target)
        results = [finish(first), finish(second)]
        for (code, _, err), other in zip(results, (second, first), strict=True):
            if code:
                [line] = error_lines(err, "djarchive")
                match = LOCKED.fullmatch(line)
                assert match, line
                assert match.group(1) in (str(other.pid), "unknown")
            else:
                assert err == ""
        codes = sorted(code for code, _, _ in results)
        assert codes in ([0, 0], [0, 1]), results
        outcomes.append(codes)
        assert read_tree(target) == FILES
        assert part_files(target) == []
        assert client().verify("ds", "1", target).intact
    assert [0, 1] in outcomes, f"the two downloads never overlapped: {outcomes}"


@pytest.mark.slow
def test_a_second_download_while_the_first_writes_is_refused_and_readers_never_see_a_wrong_file(
    archive, via_proxy, tmp_path
):
    archive.publish("ds", "1", FILES)
    release = threading.Event()
    data_gets = itertools.count()

    def gate(request: Request) -> float:
        """Hold the first download's data requests after its fifth, until the test releases them."""
        data = request.method == "GET" and "?" not in request.target and not request.path.endswith(MANIFEST)
        if data and next(data_gets) >= 5:
            release.wait(30)
        return 0.0

    via_proxy(delay=gate)
    target = tmp_path / "t"
    first = start(archive, target)
    try:
        mark = target / ".djarchive" / "lock.pid"  # the holder's pid, beside the lock file
        deadline = time.monotonic() + 30
        while not (mark.exists() and mark.read_text() == str(first.pid) and len(read_tree(target)) >= 3):
            assert time.monotonic() < deadline, "the first download never got going"
            time.sleep(0.005)
        second = start(archive, target)
        reports = []
        while second.poll() is None:  # a reader all along: files appear, but never a wrong one
            reports.append(client().verify("ds", "1", target, jobs=2))
        code, _, err = finish(second)
        assert code == 1
        [line] = error_lines(err, "djarchive")
        assert LOCKED.fullmatch(line).group(1) == str(first.pid)
    finally:
        release.set()
    while first.poll() is None:
        reports.append(client().verify("ds", "1", target, jobs=2))
    assert finish(first)[0] == 0
    assert all(report.modified == {} for report in reports), [r.modified for r in reports if r.modified]
    assert any(report.missing for report in reports)  # the reader did look mid-download
    assert read_tree(target) == FILES
    # Once the first is done, another goes through and has nothing left to fetch.
    code, out, _ = finish(start(archive, target))
    assert code == 0
    assert "fetched 0" in out


def test_two_threads_of_one_process(archive, tmp_path):
    archive.publish("ds", "1", FILES)
    target = tmp_path / "t"
    barrier = threading.Barrier(2)
    results: list[object] = []

    def run() -> None:
        barrier.wait()
        try:
            results.append(DJArchiveClient().download("ds", "1", target, create_target=True))
        except LockedError as error:
            results.append(error)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(results) == 2
    assert any(not isinstance(result, LockedError) for result in results)
    assert read_tree(target) == FILES
    assert part_files(target) == []
