"""Hostile and awkward input beyond tests/client: lying sizes, enormous lines, names that look like
formulas or Windows devices, deep paths, bad dataset and revision names, planted files and links."""

from __future__ import annotations

import json
import os
import re
import resource
import subprocess
import sys

import pytest

from djarchive_client import DJArchiveClient, client
from djarchive_common.errors import InvalidNameError, ManifestError, PartialFailureError
from djarchive_common.manifest import Entry, Manifest, parse_manifest
from tests.faults.support import (
    DEEP,
    INJECTION,
    LONGEST,
    SMALL_PARTS,
    WINDOWS,
    KiB,
    MiB,
    env_with,
    error_lines,
    fast_options,
)
from tests.helpers import manifest_bytes, part_files, read_tree, sha256
from tests.helpers import run_client as run_cli


def line(size: int, digest: str, subpath: str) -> bytes:
    quoted = subpath.replace('"', '""')
    return f'"{size}","{digest}","{quoted}"\n'.encode()


def quick(attempts: int = 2) -> DJArchiveClient:
    return DJArchiveClient(options=fast_options(attempts))


# -- declared sizes that do not match the object -------------------------------------------------

SIZE_CASES = {
    # name: (object bytes, declared size, sha256 declared)
    "whole-bigger": (b"x" * 1000, 1500, sha256(b"x" * 1000)),
    "whole-smaller": (b"y" * 1000, 600, sha256(b"y" * 600)),
    "ranged-bigger": (b"z" * (300 * KiB), 400 * KiB, sha256(b"z" * (300 * KiB))),
    "ranged-smaller-wrong-hash": (b"w" * (400 * KiB), 300 * KiB, sha256(b"w" * (400 * KiB))),
}


@pytest.mark.parametrize("case", sorted(SIZE_CASES))
def test_declared_size_that_does_not_match_the_object(archive, tmp_path, case):
    data, declared, digest = SIZE_CASES[case]
    good = {"good.bin": b"good"}
    manifest = manifest_bytes(good) + line(declared, digest, "liar.bin")
    archive.publish("ds", "1", {**good, "liar.bin": data}, manifest=manifest)
    target = tmp_path / "t"
    with pytest.raises(PartialFailureError, match="1 of 2 files of ds 1 failed") as caught:
        quick().download("ds", "1", target, create_target=True, **SMALL_PARTS)
    reason = caught.value.failures["liar.bin"]
    assert any(
        word in reason for word in ("manifest says", "short read", "shorter than", "does not match")
    ), reason
    assert read_tree(target) == good
    assert part_files(target) == []


def test_an_object_longer_than_declared_fails_by_its_real_size(archive, tmp_path):
    """The object's real size is seen before anything is planned or allocated on its claim: an
    object longer than declared, even one whose declared prefix matches, fails saying so."""
    data = os.urandom(400 * KiB)
    archive.publish("ds", "1", {"x.bin": data}, manifest=line(300 * KiB, sha256(data[: 300 * KiB]), "x.bin"))
    with pytest.raises(PartialFailureError) as caught:
        quick().download("ds", "1", tmp_path / "t", create_target=True, **SMALL_PARTS)
    assert caught.value.failures["x.bin"].endswith("the object is 409600 bytes, the manifest says 307200")
    assert read_tree(tmp_path / "t") == {}


@pytest.mark.slow
def test_an_object_far_larger_than_declared_does_not_fill_the_disk(archive, tmp_path):
    """Declared 1000 bytes, stored 4 MiB, under a 1 MiB file-size limit: the download must stop
    reading once it has more than the manifest declares, and report a size mismatch for that
    file only, not run into the limit."""
    big = os.urandom(4 * MiB)
    good = {"a.bin": b"a" * 100, "z.bin": b"z" * 100}
    manifest = manifest_bytes(good) + line(1000, sha256(big[:1000]), "m.bin")
    archive.publish("ds", "1", {**good, "m.bin": big}, manifest=manifest)

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (1 * MiB, 1 * MiB))

    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "djarchive_client.cli",
            "download",
            "ds",
            "1",
            str(tmp_path / "t"),
            "--jobs",
            "1",
        ],
        env=env_with(archive.client_env),
        capture_output=True,
        text=True,
        timeout=60,
        preexec_fn=limit,
    )
    assert result.returncode == 1
    lines = error_lines(result.stderr, "djarchive")
    assert lines[0].startswith("djarchive: failed: m.bin: "), lines
    assert "size limit" not in result.stderr
    assert lines[-1] == "djarchive: error: 1 of 3 files of ds 1 failed to download"
    assert read_tree(tmp_path / "t") == good


# -- enormous lines ------------------------------------------------------------------------------

ENORMOUS = {
    "1MB-path": line(1, "0" * 64, "a" * 1024 * 1024),
    "1MB-size": b'"' + b"9" * 1024 * 1024 + b'","' + b"0" * 64 + b'","a"\n',
    "1MB-unquoted": b"x" * 1024 * 1024 + b"\n",
    "10kB-path": line(1, "0" * 64, "b" * 10_000),
    "1MB-one-quote": b'"' + b"x" * 1024 * 1024,
}


@pytest.mark.parametrize("name", sorted(ENORMOUS))
def test_enormous_lines_are_refused_naming_the_line(archive, tmp_path, capsys, name):
    manifest = manifest_bytes({"first.dat": b"1"}) + ENORMOUS[name]
    archive.publish("ds", "1", {"first.dat": b"1"}, manifest=manifest)
    with pytest.raises(ManifestError, match=r"ds/1/djarchive-manifest.csv, line 2: "):
        client().files("ds", "1")
    code, out, err = run_cli(capsys, "download", "ds", "1", str(tmp_path / "t"))
    assert (code, out) == (1, "")
    [message] = error_lines(err, "djarchive")
    assert message.startswith("djarchive: error: invalid manifest ds/1/djarchive-manifest.csv, line 2: ")
    assert len(message) < 400  # the message names the problem, it does not echo the megabyte
    assert not (tmp_path / "t").exists()


# -- legal but awkward names ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "names", [INJECTION, WINDOWS, [DEEP, LONGEST]], ids=["csv-injection", "windows-reserved", "deep"]
)
def test_awkward_names_round_trip_and_download_exactly(archive, tmp_path, capsys, names):
    assert len(LONGEST.encode()) == 1024
    files = {name: f"content of {name}".encode() for name in names}
    archive.publish("ds", "1", files)
    entries = [Entry(name, len(data), sha256(data)) for name, data in files.items()]
    assert Manifest(entries).to_bytes() == manifest_bytes(files)
    assert list(parse_manifest(manifest_bytes(files))) == sorted(entries)

    code, out, _ = run_cli(capsys, "files", "ds", "1", "--json")
    assert code == 0
    assert sorted(item["path"] for item in json.loads(out)) == sorted(names)
    code, out, err = run_cli(capsys, "download", "ds", "1", str(tmp_path / "t"), "-q")
    assert (code, err) == (0, "")
    assert read_tree(tmp_path / "t") == files
    assert sorted(os.listdir(tmp_path)) == ["cwd", "home", "t"]
    assert run_cli(capsys, "verify", "ds", "1", str(tmp_path / "t"), "-q")[0] == 0


@pytest.mark.parametrize(
    ("subpath", "problem"),
    [
        (DEEP.replace("f.bin", "f" * 30 + ".bin"), "longer than 1024 bytes"),
        (LONGEST + "x", "longer than 1024 bytes"),
        ("q" * 256, "component longer than 255 bytes"),
        ("ok/" + "é" * 128, "component longer than 255 bytes"),  # 256 bytes in UTF-8
    ],
)
def test_paths_beyond_the_limits_are_refused(archive, tmp_path, subpath, problem):
    archive.publish("ds", "1", {"a": b"a"}, manifest=line(1, "0" * 64, subpath))
    with pytest.raises(ManifestError, match=f"line 1: path {problem}"):
        client().download("ds", "1", tmp_path / "t", create_target=True)
    assert not (tmp_path / "t").exists()


# -- bad dataset and revision names --------------------------------------------------------------

BAD_NAMES = [
    "..",
    ".",
    "a/b",
    "",
    "long-name" * 14 + "abc",
    ".hidden",
    "a b",
    "trailing ",
    "a\\b",
    "tab\there",
    "ünï",
    "a:b",
]


@pytest.fixture
def nowhere(monkeypatch):
    """An endpoint where nothing listens: a name check must refuse before any connection."""
    monkeypatch.setenv("DJARCHIVE_CLIENT_ENDPOINT", "http://127.0.0.1:9")
    monkeypatch.setenv("DJARCHIVE_CLIENT_BUCKET", "some-bucket")


@pytest.mark.parametrize("bad", BAD_NAMES, ids=repr)
def test_bad_names_are_refused_by_the_api(nowhere, tmp_path, bad):
    c = client()
    calls = [
        (lambda: c.files(bad, "1"), "dataset"),
        (lambda: c.files("ds", bad), "revision"),
        (lambda: c.download(bad, "1", tmp_path / "t", create_target=True), "dataset"),
        (lambda: c.download("ds", bad, tmp_path / "t", create_target=True), "revision"),
        (lambda: c.verify("ds", bad, tmp_path), "revision"),
        (lambda: list(c.revisions(bad)), "dataset"),
    ]
    for call, kind in calls:
        with pytest.raises(InvalidNameError, match=re.escape(f"invalid {kind} name {bad!r}: ")):
            call()
    assert not (tmp_path / "t").exists()


@pytest.mark.parametrize("bad", BAD_NAMES, ids=repr)
def test_bad_names_are_one_line_and_exit_1_on_the_cli(nowhere, tmp_path, capsys, bad):
    target = str(tmp_path / "t")
    for argv, kind in [
        (["files", bad, "1"], "dataset"),
        (["files", "ds", bad], "revision"),
        (["download", bad, "1", target], "dataset"),
        (["download", "ds", bad, target], "revision"),
        (["verify", "ds", bad, target], "revision"),
        (["revisions", bad], "dataset"),
    ]:
        code, out, err = run_cli(capsys, *argv)
        assert (code, out) == (1, ""), argv
        [message] = error_lines(err, "djarchive")
        assert message.startswith(f"djarchive: error: invalid {kind} name {bad!r}: use 1-128 letters"), (
            message
        )
    assert not (tmp_path / "t").exists()


def test_the_longest_names_are_accepted(nowhere):
    longest = "long-name" * 14 + "ab"
    with pytest.raises(Exception) as caught:  # noqa: PT011 - anything but a name error: the network is next
        client().files(longest, longest)
    assert not isinstance(caught.value, InvalidNameError)
    assert "cannot reach 127.0.0.1:9" in str(caught.value)


# -- planted files and links at final names ------------------------------------------------------


def test_a_symlink_at_a_final_name_is_replaced_not_followed(archive, tmp_path):
    files = {"a.bin": b"the real content", "sub/b.bin": b"more"}
    archive.publish("ds", "1", files)
    outside = tmp_path / "outside.txt"
    outside.write_bytes(b"precious")
    target = tmp_path / "t"
    (target / "sub").mkdir(parents=True)
    (target / "a.bin").symlink_to(outside)
    os.link(outside, target / "sub" / "b.bin")  # a hard link to a file outside, with the wrong content
    report = client().verify("ds", "1", target)
    assert report.modified == {"a.bin": "not a regular file", "sub/b.bin": "size 8, expected 4"}
    assert client().download("ds", "1", target).fetched_files == 2
    assert outside.read_bytes() == b"precious"
    assert not (target / "a.bin").is_symlink()
    assert read_tree(target) == files


def test_a_folder_at_a_final_name_or_a_file_at_a_folder_is_reported(archive, tmp_path):
    files = {"a.bin": b"a", "sub/b.bin": b"b", "ok.bin": b"ok"}
    archive.publish("ds", "1", files)
    target = tmp_path / "t"
    (target / "a.bin" / "inner").mkdir(parents=True)
    (target / "sub").write_bytes(b"I am a file")
    with pytest.raises(PartialFailureError, match="2 of 3 files") as caught:
        quick().download("ds", "1", target)
    assert sorted(caught.value.failures) == ["a.bin", "sub/b.bin"]
    assert (target / "a.bin" / "inner").is_dir()
    assert (target / "sub").read_bytes() == b"I am a file"
    assert (target / "ok.bin").read_bytes() == b"ok"
    assert part_files(target) == []
