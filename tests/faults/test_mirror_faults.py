"""Mirrors under faults: the primary failing mid-download, a hostile mirror flipping bytes, a mirror
that stalls, a primary answering 5xx (which never lets a mirror's manifest in).

The mirror is Python's ``http.server`` over a folder made by ``djarchive-admin mirror``; the fault
proxy stands in front of the primary (moto) or of the mirror. Whatever happens, every file placed
is byte-exact, and a download exits 0 when every file ended verified.
"""

from __future__ import annotations

import json
import threading

import pytest

from djarchive_admin import admin
from djarchive_client import DJArchiveClient
from djarchive_client.cli import main
from djarchive_common.errors import PartialFailureError, SignatureError
from djarchive_common.signing import SigningKey, generate_key, signatures_bytes
from tests.faults.proxy import FaultProxy, Request
from tests.faults.support import SMALL_PARTS, KiB, dataset, error_lines, fast_options
from tests.helpers import read_tree

FILES = dataset(16, 40 * KiB, big={"big/recording.bin": 640 * KiB + 17})
METADATA = ("djarchive-manifest.csv", "djarchive-manifest.sig")


@pytest.fixture(scope="module")
def alice(tmp_path_factory) -> SigningKey:
    folder = tmp_path_factory.mktemp("keys")
    generate_key(folder / "alice")
    return SigningKey.load(folder / "alice")


@pytest.fixture
def published(archive, alice, make_mirror, tmp_path):
    """FILES published as some-set 000, signed by alice, mirrored; the mirror's folder."""
    archive.publish("some-set", "000", FILES)
    manifest = archive.get("some-set/000/djarchive-manifest.csv")
    archive.put(
        "some-set/000/djarchive-manifest.sig", signatures_bytes([alice.sign("some-set", "000", manifest)])
    )
    root = tmp_path / "mirror-root"
    admin().mirror("some-set", "000", root)
    return root


def is_data(request: Request) -> bool:
    return request.method == "GET" and "?" not in request.target and not request.path.endswith(METADATA)


def test_the_primary_failing_for_good_mid_download(
    archive, published, via_proxy, make_mirror, tmp_path, capsys
):
    many = dataset(60, 8 * KiB, seed=3)
    archive.publish("some-set", "001", many)
    admin().mirror("some-set", "001", published)
    served = threading.Semaphore(12)  # the primary serves twelve data GETs, then cuts every connection
    slower = FaultProxy(("127.0.0.1", make_mirror(published, ranges=True).port), delay=0.05).start()
    mirror_url = slower.url + "/"  # slower than the primary: the primary is used first

    def rule(request: Request, attempt: int) -> str | None:
        if not is_data(request):
            return None
        return None if served.acquire(blocking=False) else "reset"

    proxy = via_proxy(rule=rule)
    target = tmp_path / "copy"
    argv = ["download", "some-set", "001", str(target), "--mirror", mirror_url, "--json", "--jobs", "4"]
    try:
        code = main(argv)
    finally:
        slower.stop()
    out, err = capsys.readouterr()
    assert code == 0, err
    assert read_tree(target) == many
    summary = json.loads(out)
    primary = f"{proxy.url}/{archive.bucket}"
    assert summary["sources"][mirror_url] > 0
    assert summary["sources"][primary] >= 12 * 8 * KiB
    assert sum(summary["sources"].values()) == sum(map(len, many.values()))
    assert primary in summary["dropped_sources"]  # it kept failing: not used again
    assert proxy.faults >= 3


def test_a_hostile_mirror_flipping_bytes_costs_time_never_correctness(
    published, alice, make_mirror, tmp_path, monkeypatch
):
    mirror = make_mirror(published, ranges=True)
    hostile = FaultProxy(("127.0.0.1", mirror.port), rates={"corrupt": 1.0}).start()
    try:
        url = hostile.url + "/"
        reader = DJArchiveClient(mirrors=[url], trusted_keys=alice.public.line, options=fast_options())
        summary = reader.download("some-set", "000", tmp_path / "copy", create_target=True, **SMALL_PARTS)
        assert read_tree(tmp_path / "copy") == FILES
        assert set(summary.sources) == {reader.store.name}  # every byte the mirror sent was refused
        assert url in summary.dropped_sources
        assert hostile.faults >= 3

        # With the primary unreachable there is nothing else: its manifest is refused outright.
        monkeypatch.setenv("DJARCHIVE_CLIENT_ENDPOINT", "http://127.0.0.1:9")
        alone = DJArchiveClient(mirrors=[url], trusted_keys=alice.public.line, options=fast_options(2))
        with pytest.raises(SignatureError, match="not signed by a key you trust"):
            alone.download("some-set", "000", tmp_path / "other", create_target=True)
        assert not (tmp_path / "other").exists()
    finally:
        hostile.stop()


def test_a_mirror_that_flips_bytes_of_data_only_fails_files_it_alone_serves(
    published, alice, make_mirror, tmp_path, monkeypatch
):
    mirror = make_mirror(published)
    hostile = FaultProxy(
        ("127.0.0.1", mirror.port), rates={"corrupt": 1.0}, applies=lambda request: is_data(request)
    ).start()
    try:
        monkeypatch.setenv("DJARCHIVE_CLIENT_ENDPOINT", "http://127.0.0.1:9")  # the primary down
        reader = DJArchiveClient(
            mirrors=[hostile.url + "/"], trusted_keys=alice.public.line, options=fast_options(2)
        )
        with pytest.raises(PartialFailureError) as caught:
            reader.download("some-set", "000", tmp_path / "copy", create_target=True)
        assert set(caught.value.failures) == set(FILES)
        assert all("sha256" in why or "cannot reach" in why for why in caught.value.failures.values())
        assert read_tree(tmp_path / "copy") == {}  # nothing wrong was ever placed
    finally:
        hostile.stop()


def test_a_stalling_mirror_is_left_for_the_primary(published, make_mirror, tmp_path, monkeypatch):
    mirror = make_mirror(published)
    stalling = FaultProxy(("127.0.0.1", mirror.port), rates={"stall": 1.0}, stall_seconds=20).start()
    try:
        monkeypatch.setenv("DJARCHIVE_READ_TIMEOUT", "1")
        reader = DJArchiveClient(mirrors=[stalling.url + "/"], options=fast_options(read_timeout=1))
        summary = reader.download("some-set", "000", tmp_path / "copy", create_target=True)
        assert read_tree(tmp_path / "copy") == FILES
        assert set(summary.sources) == {reader.store.name}
    finally:
        stalling.stop()


def test_a_primary_answering_5xx_never_lets_a_mirror_manifest_in(
    published, alice, via_proxy, make_mirror, tmp_path, capsys, no_backoff
):
    mirror = make_mirror(published)
    via_proxy(rates={"error503": 1.0})
    target = tmp_path / "copy"
    code = main(
        ["download", "some-set", "000", str(target), "--mirror", mirror.url, "--trust", alice.public.line]
    )
    err = capsys.readouterr().err
    assert code == 1
    (line,) = error_lines(err, "djarchive")
    assert "ServiceUnavailable" in line
    assert "mirror" not in line
    assert not target.exists()
    assert not mirror.gets("djarchive-manifest.csv")  # never asked
