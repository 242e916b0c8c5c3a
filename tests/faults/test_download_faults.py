"""Downloads through the fault proxy: cut, truncated, stalled, corrupted and refused connections.

Whatever the network does, a download either completes with every file byte-exact or fails
with a clear error; no file at its final name ever differs from the manifest and no
temporary file is left behind.
"""

from __future__ import annotations

import itertools
import random
import re
import time
from collections import Counter
from collections.abc import Callable

import pytest

from djarchive_client import DJArchiveClient
from djarchive_client.cli import main
from djarchive_common.errors import PartialFailureError
from tests.faults.proxy import Request, pick
from tests.faults.support import (
    MANIFEST,
    SMALL_PARTS,
    KiB,
    dataset,
    error_lines,
    fast_options,
    popen,
    python,
)
from tests.helpers import manifest_bytes, part_files, read_tree

METADATA = (MANIFEST, "djarchive-manifest.sig")  # read with the manifest, before any data
FILES = dataset(10, 3000, big={"big/recording.bin": 1024 * KiB + 17, "big/empty.bin": 0})
SMALL = dataset(6, 2000)


def is_data(request: Request) -> bool:
    """A GET of a data object (not the manifest or its signatures, not a listing)."""
    return request.method == "GET" and "?" not in request.target and not request.path.endswith(METADATA)


def mixed(rates: dict[str, float], seed: int):
    """A proxy rule striking at ``rates``, but never with a fault no client could detect in a
    manifest: over plain http a manifest cut short with a matching Content-Length is just a
    smaller manifest (the tests of truncated manifests below cut it the detectable way)."""

    def rule(request: Request, attempt: int) -> str | None:
        kind = pick(rates, random.Random(f"{seed}|{request.key}|{attempt}").random())
        if request.path.endswith(METADATA) and kind in ("short", "corrupt", "truncate"):
            return None
        return kind

    return rule


def ranged(requests: list[Request]) -> list[Request]:
    return [request for request in requests if request.header("range")]


def first_gets(wanted) -> Callable[[Request, int], str | None]:
    """A proxy rule stalling the first GET of each file (or range) that ``wanted(request)``
    accepts. A GET resumed after the bytes it got asks for a shorter range with the same end, so
    (path, end of range) names a file or range across its attempts, on either transport."""
    seen: Counter[tuple[str, str]] = Counter()

    def rule(request: Request, attempt: int) -> str | None:
        if not wanted(request):
            return None
        key = (request.path, request.header("range").rpartition("-")[2])
        seen[key] += 1
        return "stall" if seen[key] == 1 else None

    return rule


@pytest.fixture
def published(archive):
    archive.publish("ds", "1", FILES)
    return archive


def download(target, attempts: int = 8, **options):
    client = DJArchiveClient(options=fast_options(attempts))
    return client.download("ds", "1", target, create_target=True, **SMALL_PARTS, **options)


def assert_nothing_wrong_placed(target, files=FILES) -> None:
    """Every file at a final name is exact; no temporary file is left."""
    for subpath, data in read_tree(target).items():
        assert data == files[subpath], f"{subpath} at its final name differs from the manifest"
    assert part_files(target) == []


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_thirty_percent_of_connections_cut(published, via_proxy, tmp_path, seed):
    proxy = via_proxy(rule=mixed({"reset": 0.2, "truncate": 0.1}, seed))
    summary = download(tmp_path / "t")
    assert summary.ok
    assert read_tree(tmp_path / "t") == FILES
    assert part_files(tmp_path / "t") == []
    assert proxy.counts["reset"]
    assert proxy.counts["truncate"]
    assert ranged(proxy.struck()), "no byte range was cut: the large file's path went untested"
    assert 0.15 < proxy.faults / proxy.counts["requests"] < 0.45


def test_thirty_percent_cut_through_the_cli_with_default_retries(archive, via_proxy, tmp_path):
    archive.publish("ds", "1", SMALL)
    proxy = via_proxy(rates={"reset": 0.3}, seed=11)
    result = python(
        "-m", "djarchive_client.cli", "download", "ds", "1", str(tmp_path / "t"), env=archive.client_env
    )
    assert (result.returncode, result.stderr) == (0, "")
    assert "fetched 6" in result.stdout
    assert read_tree(tmp_path / "t") == SMALL
    assert proxy.counts["reset"] >= 2


def test_every_data_connection_cut_fails_cleanly(published, via_proxy, tmp_path):
    proxy = via_proxy(rates={"reset": 1.0}, applies=is_data)
    started = time.monotonic()
    with pytest.raises(
        PartialFailureError, match=f"{len(FILES)} of {len(FILES)} files of ds 1 failed"
    ) as caught:
        download(tmp_path / "t", attempts=2)
    assert time.monotonic() - started < 20
    failures = caught.value.failures
    assert sorted(failures) == sorted(FILES)
    for reason in failures.values():
        assert re.match(r"downloading ds/1/\S+: connection to 127\.0\.0\.1:\d+ failed", reason), reason
    assert read_tree(tmp_path / "t") == {}
    assert part_files(tmp_path / "t") == []
    assert proxy.counts["requests"] >= 2 * len(failures)


def test_every_connection_cut_fails_cleanly_through_the_cli(published, via_proxy, tmp_path):
    via_proxy(rates={"reset": 1.0})
    started = time.monotonic()
    result = python(
        "-m", "djarchive_client.cli", "download", "ds", "1", str(tmp_path / "t"), env=published.client_env
    )
    assert time.monotonic() - started < 20
    assert result.returncode == 1
    assert result.stdout == ""
    [line] = error_lines(result.stderr, "djarchive")
    assert line.startswith(f"djarchive: error: reading ds/1/{MANIFEST}: connection to 127.0.0.1:")
    assert not (tmp_path / "t").exists()


def test_every_data_connection_cut_through_the_cli(archive, via_proxy, tmp_path, capsys, no_backoff):
    archive.publish("ds", "1", SMALL)
    proxy = via_proxy(rates={"reset": 1.0}, applies=is_data)
    assert main(["download", "ds", "1", str(tmp_path / "t")]) == 1
    out, err = capsys.readouterr()
    lines = error_lines(err, "djarchive")
    assert lines[-1] == "djarchive: error: 6 of 6 files of ds 1 failed to download"
    assert sorted(line.split(": ")[2] for line in lines[:-1]) == sorted(SMALL)
    assert "6 FAILED" in out
    assert read_tree(tmp_path / "t") == {}
    assert part_files(tmp_path / "t") == []
    assert proxy.counts["reset"] == 5 * len(SMALL)  # the default policy: five attempts, nothing around it


def test_stalled_responses_hit_the_read_timeout_and_are_retried(published, via_proxy, tmp_path, monkeypatch):
    monkeypatch.setenv("DJARCHIVE_READ_TIMEOUT", "0.5")

    def stalled(request: Request) -> bool:
        second_range = request.header("range").endswith("-131071")
        return request.path.endswith((MANIFEST, "chunk003.bin")) or second_range

    proxy = via_proxy(rule=first_gets(stalled), stall_seconds=60)
    started = time.monotonic()
    summary = download(tmp_path / "t")
    assert time.monotonic() - started < 15  # 60 s stalls: only the read timeout can have ended them
    assert summary.ok
    assert read_tree(tmp_path / "t") == FILES
    assert len(proxy.struck("stall")) == 3


def test_a_stall_through_the_cli_with_default_retries(archive, via_proxy, tmp_path):
    archive.publish("ds", "1", SMALL)
    proxy = via_proxy(rule=first_gets(is_data))
    env = {**archive.client_env, "DJARCHIVE_READ_TIMEOUT": "1"}
    started = time.monotonic()
    result = python("-m", "djarchive_client.cli", "download", "ds", "1", str(tmp_path / "t"), env=env)
    assert time.monotonic() - started < 20
    assert (result.returncode, result.stderr) == (0, "")
    assert read_tree(tmp_path / "t") == SMALL
    assert proxy.counts["stall"] == len(SMALL)


@pytest.mark.parametrize("plain", [False, True], ids=["xml", "plain"])
def test_500_and_503_answers_are_retried(published, via_proxy, tmp_path, plain):
    random_errors = mixed({"error500": 0.2, "error503": 0.2}, seed=5)

    def rule(request: Request, attempt: int) -> str | None:
        if request.path.endswith(MANIFEST) and attempt < 2:
            return ("error503", "error500")[attempt]
        return random_errors(request, attempt)

    proxy = via_proxy(rule=rule, plain_errors=plain)
    summary = download(tmp_path / "t")
    assert summary.ok
    assert read_tree(tmp_path / "t") == FILES
    assert proxy.counts["error500"] > 2
    assert proxy.counts["error503"] > 2
    assert ranged(proxy.struck())


def test_persistent_503_is_reported_per_file(published, via_proxy, tmp_path):
    via_proxy(rates={"error503": 1.0}, applies=is_data)
    with pytest.raises(PartialFailureError) as caught:
        download(tmp_path / "t", attempts=3)
    assert "big/recording.bin" in caught.value.failures
    assert sorted(caught.value.failures) == sorted(FILES)
    for reason in caught.value.failures.values():
        assert "answered ServiceUnavailable: Please reduce your request rate." in reason
    assert read_tree(tmp_path / "t") == {}
    assert part_files(tmp_path / "t") == []


@pytest.mark.parametrize("kind", ["truncate", "short", "corrupt"])
def test_damaged_bodies_are_detected_and_retried(published, via_proxy, tmp_path, kind):
    seen: Counter[tuple[str, str]] = Counter()

    def rule(request: Request, attempt: int) -> str | None:
        """The first two GETs of each file or range fail (a resumed range asks for less of it)."""
        if not is_data(request):
            return None
        key = (request.path, request.header("range").rpartition("-")[2])
        seen[key] += 1
        return kind if seen[key] <= 2 else None

    proxy = via_proxy(rule=rule)
    summary = download(tmp_path / "t")
    assert summary.ok
    assert read_tree(tmp_path / "t") == FILES
    # Every range of the large file in the first pass (after a bad hash it comes as one stream).
    assert len(ranged(proxy.struck(kind))) >= 17
    assert proxy.counts[kind] >= 2 * (len(FILES) - 1)


@pytest.mark.parametrize(
    ("kind", "reason"),
    [
        ("truncate", "connection to 127.0.0.1|received 0 bytes"),
        ("short", "received|short read|the object is \\d+ bytes, the manifest says"),
        ("corrupt", "does not match the manifest"),
    ],
)
def test_damaged_bodies_are_never_placed(published, via_proxy, tmp_path, kind, reason):
    via_proxy(rates={kind: 1.0}, applies=is_data)
    with pytest.raises(PartialFailureError) as caught:
        download(tmp_path / "t", attempts=2)
    # An empty file has no body to damage (a head cut short still says 200 and no bytes).
    assert set(caught.value.failures) >= {subpath for subpath in FILES if FILES[subpath]}
    for subpath, failure in caught.value.failures.items():
        assert re.search(reason, failure), (subpath, failure)
    assert read_tree(tmp_path / "t") in ({}, {"big/empty.bin": b""})
    assert part_files(tmp_path / "t") == []


@pytest.mark.parametrize("seed", [21, 22])
def test_every_fault_at_once(published, via_proxy, tmp_path, monkeypatch, seed):
    monkeypatch.setenv("DJARCHIVE_READ_TIMEOUT", "0.5")
    rates = {
        "reset": 0.06,
        "truncate": 0.06,
        "short": 0.06,
        "corrupt": 0.06,
        "error500": 0.03,
        "error503": 0.03,
    }
    proxy = via_proxy(rule=mixed({**rates, "stall": 0.02}, seed), stall_seconds=60)
    summary = download(tmp_path / "t")
    assert summary.ok
    assert read_tree(tmp_path / "t") == FILES
    assert part_files(tmp_path / "t") == []
    assert len({kind for kind, _ in proxy.events}) >= 4


def test_a_resumed_download_after_failures_fetches_only_what_is_missing(published, via_proxy, tmp_path):
    proxy = via_proxy(rates={"reset": 1.0}, applies=lambda r: is_data(r) and "session1/" in r.path)
    with pytest.raises(PartialFailureError) as caught:
        download(tmp_path / "t", attempts=2)
    failed = sorted(caught.value.failures)
    assert failed == sorted(subpath for subpath in FILES if subpath.startswith("session1/"))
    proxy.applies = lambda request: False
    summary = download(tmp_path / "t")
    assert summary.fetched_files == len(failed)
    assert read_tree(tmp_path / "t") == FILES


def test_the_endpoint_going_away_mid_download(published, make_proxy, tmp_path):
    """Three files get through, then the server vanishes: a clear failure, nothing wrong placed."""
    passed = itertools.count()
    proxies: list = []

    def three_then_vanish(request: Request) -> float:
        if is_data(request) and next(passed) >= 3:
            proxies[0].wait_stopped(30)  # held until the proxy is gone: the connection just drops
        return 0.0

    proxies.append(make_proxy(delay=three_then_vanish))
    env = {"DJARCHIVE_CLIENT_ENDPOINT": proxies[0].url, "DJARCHIVE_CLIENT_BUCKET": published.bucket}
    target = tmp_path / "t"
    process = popen(
        ["-m", "djarchive_client.cli", "download", "ds", "1", str(target), "--jobs", "16"], env=env
    )
    deadline = time.monotonic() + 30
    while len(read_tree(target) if target.exists() else {}) < 3:
        assert time.monotonic() < deadline, "no file got through"
        time.sleep(0.005)
    proxies[0].stop()
    _, err = process.communicate(timeout=60)
    assert process.returncode == 1
    lines = error_lines(err, "djarchive")
    assert lines[-1] == f"djarchive: error: {len(FILES) - 3} of {len(FILES)} files of ds 1 failed to download"
    for line in lines[:-1]:
        assert re.search(r"connection to 127\.0\.0\.1:\d+ failed|cannot reach 127\.0\.0\.1:\d+", line), line
    assert_nothing_wrong_placed(target)
    assert len(read_tree(target)) == 3


def test_the_manifest_read_survives_resets_and_stalls(published, via_proxy, tmp_path, monkeypatch):
    monkeypatch.setenv("DJARCHIVE_READ_TIMEOUT", "0.5")
    kinds = ["reset", "stall", "error503", "reset"]
    proxy = via_proxy(
        rule=lambda request, attempt: (
            kinds[attempt] if request.path.endswith(MANIFEST) and attempt < 4 else None
        )
    )
    assert download(tmp_path / "t").ok
    assert read_tree(tmp_path / "t") == FILES
    assert [kind for kind, _ in proxy.events] == kinds


def manifest_cut(files, lines: int | None = None):
    """A proxy rule that closes the connection early on the first read of the manifest: after
    ``lines`` whole lines (exactly at a line end), or in the middle of it."""
    data = manifest_bytes(files)
    where = len(b"".join(data.splitlines(keepends=True)[:lines])) if lines is not None else len(data) // 2 + 1

    def rule(request: Request, attempt: int):
        return ("truncate", where) if request.path.endswith(MANIFEST) and attempt == 0 else None

    return rule


def test_a_manifest_cut_mid_line_is_retried(published, via_proxy, tmp_path):
    proxy = via_proxy(rule=manifest_cut(FILES))
    summary = download(tmp_path / "t")
    assert proxy.counts["truncate"] == 1
    assert summary.ok
    assert read_tree(tmp_path / "t") == FILES


def test_a_manifest_cut_at_a_line_end_is_not_a_smaller_revision(published, via_proxy, tmp_path):
    proxy = via_proxy(rule=manifest_cut(FILES, lines=4))
    summary = download(tmp_path / "t")
    assert proxy.counts["truncate"] == 1
    assert summary.files == len(FILES), f"the download planned {summary.files} of {len(FILES)} files"
    assert read_tree(tmp_path / "t") == FILES


def test_a_manifest_response_cut_in_its_head_is_not_an_empty_revision(published, via_proxy, tmp_path):
    """http.client takes a head that ends early (after the status line) as complete: no
    Content-Length, an empty body. The manifest must not then read as a revision of no files."""
    proxy = via_proxy(
        rule=lambda r, attempt: ("truncate", 0.03) if r.path.endswith(MANIFEST) and attempt == 0 else None
    )
    summary = download(tmp_path / "t")
    assert proxy.counts["truncate"] == 1
    assert summary.files == len(FILES), f"the download planned {summary.files} of {len(FILES)} files"
    assert read_tree(tmp_path / "t") == FILES


def listing_cut(attempts: int):
    def rule(request: Request, attempt: int):
        return (
            ("truncate", 0.03)
            if request.method == "GET" and "?" in request.target and attempt < attempts
            else None
        )

    return rule


def test_a_listing_cut_short_is_retried(published, via_proxy):
    proxy = via_proxy(rule=listing_cut(attempts=1))
    client = DJArchiveClient(options=fast_options())
    assert list(client.revisions()) == [("ds", "1")]
    assert proxy.counts["truncate"] >= 1


def test_a_listing_always_cut_short_is_one_clear_line(published, via_proxy):
    via_proxy(rule=listing_cut(attempts=99))
    result = python("-m", "djarchive_client.cli", "datasets", env=published.client_env)
    assert result.returncode == 1
    [line] = error_lines(result.stderr, "djarchive")
    assert line.startswith("djarchive: error: listing")


def test_a_range_retried_resumes_and_never_rewrites_bytes_already_hashed(published, via_proxy, tmp_path):
    """The first GET of the large file's first range is cut after 30,000 bytes (hashed as they
    came); every later GET starting at 0 flips byte 10. A retry that fetched the range from its
    start again would overwrite hashed bytes with unhashed ones and place a damaged file whose
    hash still matched; resuming where the range stopped never asks for those bytes again."""

    def rule(request: Request, attempt: int):
        if not (is_data(request) and request.header("range").startswith("bytes=0-")):
            return None
        return ("truncate", 30_000) if attempt == 0 else ("corrupt", 10)

    proxy = via_proxy(rule=rule)
    summary = download(tmp_path / "t")
    assert summary.ok
    assert proxy.struck("truncate")
    assert read_tree(tmp_path / "t") == FILES
    assert_nothing_wrong_placed(tmp_path / "t")
