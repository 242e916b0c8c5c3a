"""Integrity on whatever server the tests run against (moto by default; s3rver with
``DJARCHIVE_TEST_SERVER=s3rver``, where ``tox -e py311-s3rver`` runs this file too): two curators
writing one revision at once, and bodies damaged on their way to the server.

moto and s3rver check no digest (a body that does not match its ``x-amz-content-sha256`` or
``x-amz-checksum-sha256`` is stored as it came), so a damaged body is caught by the uploader,
which compares each answer's MD5 ETag with what it sent; a server that checks digests (MinIO, S3)
refuses it itself, and the doctor says which of the two a server does."""

from __future__ import annotations

import base64
import hashlib
import re

import pytest

pytest.importorskip("djarchive_admin")

from djarchive_admin import admin
from djarchive_client import client
from tests.faults.proxy import Request
from tests.faults.support import MANIFEST, MiB, dataset, error_lines, popen
from tests.helpers import read_tree, write_tree

RACE_FILES = 30
ONE_LINE = re.compile(
    r"djarchive-admin: error: ("
    r".+ ignores conditional writes \(If-None-Match/If-Match\), so djarchive-admin cannot keep .+"
    r"|ds 1 is being changed by another djarchive-admin \(pid \d+ on .+"
    r"|ds 1 is already published .+"
    r"|cannot publish ds 1: .+)"
)


def is_data_put(request: Request) -> bool:
    return request.method == "PUT" and "/ds/1/" in request.path and not request.path.endswith(MANIFEST)


def curator(archive, source, *extra: str):
    return popen(
        ["-m", "djarchive_admin.cli", "upload", "ds", "1", str(source), *extra], env=archive.admin_env
    )


def two_sources(tmp_path, round_number: int):
    """Two curators' versions of one revision: the same names and sizes, other bytes."""
    first = dataset(RACE_FILES, 2000, seed=2 * round_number)
    second = dataset(RACE_FILES, 2000, seed=2 * round_number + 1)
    folder = tmp_path / f"round{round_number}"
    return write_tree(folder / "a", first), write_tree(folder / "b", second)


def outcome(archive, processes, sources, tmp_path, name: str) -> list[int]:
    """The exit codes; refusals are one clear line, never both told they succeeded, and whatever
    is published downloads and verifies as one of the two sources exactly."""
    outputs = [process.communicate(timeout=180) for process in processes]
    results = [(process.returncode, out, err) for process, (out, err) in zip(processes, outputs, strict=True)]
    codes = [code for code, _, _ in results]
    for code, out, err in results:
        if code:
            [line] = error_lines(err, "djarchive-admin")
            assert ONE_LINE.fullmatch(line), line
        else:
            assert out.rstrip().endswith("; published"), out
    assert codes.count(0) <= 1, f"both curators were told they succeeded: {results}"
    if ("ds", "1") in set(client().revisions()):
        target = tmp_path / name
        client().download("ds", "1", target, create_target=True)
        assert read_tree(target) in [read_tree(source) for source in sources]
        assert client().verify("ds", "1", target).intact
    else:
        assert 0 not in codes, "a curator was told published, but nothing is"
    return codes


@pytest.mark.slow
def test_two_curators_uploading_other_content_into_one_revision_at_once(archive, tmp_path, monkeypatch):
    """Three times, two curators start at once, each with its own content for ds 1. On moto the
    lease lets one through; on s3rver, which ignores conditional writes, both are refused in one
    line (neither declared itself the only writer)."""
    monkeypatch.delenv("DJARCHIVE_ADMIN_SINGLE_WRITER", raising=False)
    archive.admin_env.pop("DJARCHIVE_ADMIN_SINGLE_WRITER", None)
    for round_number in range(3):
        sources = two_sources(tmp_path, round_number)
        processes = [curator(archive, source) for source in sources]
        codes = outcome(archive, processes, sources, tmp_path, f"copy{round_number}")
        if archive.server.conditional_writes:
            assert sorted(codes) == [0, 1]
        else:
            assert codes == [2, 2]
            assert archive.keys() == []
        if 0 in codes:
            admin().retract("ds", "1", purge=True)


@pytest.mark.slow
def test_a_single_writer_starting_while_another_holds_the_revision_is_refused(archive, via_proxy, tmp_path):
    """The issue's scenario, with --single-writer declared by both (wrongly): the second starts
    while the first holds its lease and is sending. It is refused; the first publishes its own
    content, which downloads and verifies. Three times."""
    import threading

    for round_number in range(3):
        sources = two_sources(tmp_path, round_number)
        sending, second_done = threading.Event(), threading.Event()

        def hold_data(request: Request, sending=sending, second_done=second_done) -> float:
            if is_data_put(request):
                sending.set()
                second_done.wait(60)  # the first curator is still sending while the second tries
            return 0.0

        proxy = via_proxy(delay=hold_data)
        first = curator(archive, sources[0], "--single-writer")
        try:
            assert sending.wait(60), "the first curator never started sending"
            second = curator(archive, sources[1], "--single-writer")
            second.wait(120)
        finally:
            second_done.set()
        codes = outcome(archive, [first, second], sources, tmp_path, f"copy{round_number}")
        assert codes == [0, 1]
        target = tmp_path / f"copy{round_number}"
        assert read_tree(target) == read_tree(sources[0])
        proxy.stop()
        admin(endpoint=archive.server.url).retract("ds", "1", purge=True)


@pytest.mark.slow
def test_every_put_carries_its_sha256_and_a_damaged_body_is_not_what_gets_published(
    archive, via_proxy, tmp_path
):
    """Each data PUT (whole objects and multipart parts) signs the real sha256 of its body and sends
    it as x-amz-checksum-sha256. The proxy damages the first body of every data PUT: a server that
    checks digests refuses it; moto and s3rver store it, and the uploader, seeing an ETag that is
    not the MD5 of what it sent, sends it again. The revision published is the source exactly."""
    files = dataset(6, 3000, big={"big/recording.bin": 5 * MiB + 11})
    source = write_tree(tmp_path / "source", files)
    proxy = via_proxy(alter=lambda request, attempt: is_data_put(request) and attempt == 0)
    summary = admin().upload("ds", "1", source, part_size=5 * MiB)
    assert summary.published

    puts = [request for request in proxy.requests if is_data_put(request)]
    parts = [request for request in puts if "partNumber=" in request.target]
    assert len(parts) == 4  # two parts, each sent twice
    for request in puts:
        content = request.header("x-amz-content-sha256")
        assert re.fullmatch(r"[0-9a-f]{64}", content), request
        assert request.header("x-amz-checksum-sha256") == base64.b64encode(bytes.fromhex(content)).decode()
    whole = {request.path.split("/ds/1/", 1)[1]: request for request in puts if request not in parts}
    for subpath, request in whole.items():
        assert request.header("x-amz-content-sha256") == hashlib.sha256(files[subpath]).hexdigest()
    big = files["big/recording.bin"]
    part_digests = {request.header("x-amz-content-sha256") for request in parts}
    assert part_digests == {
        hashlib.sha256(big[: 5 * MiB]).hexdigest(),
        hashlib.sha256(big[5 * MiB :]).hexdigest(),
    }

    sent = len(files) - 1 + 2  # six whole objects and two parts
    assert proxy.counts["altered"] == sent  # each once, the first time it was sent
    statuses = [status for request, status in proxy.answers if is_data_put(request)]
    if admin().server_support().digests_checked:  # MinIO, S3: refused by the server itself
        assert len([status for status in statuses if status >= 400]) == sent
    else:  # moto, s3rver: stored as it came (200), then sent again by the uploader
        assert statuses == [200] * 2 * sent
    assert len(puts) == 2 * sent
    target = tmp_path / "copy"
    client().download("ds", "1", target, create_target=True)
    assert read_tree(target) == files
