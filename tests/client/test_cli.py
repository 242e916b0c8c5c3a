"""The djarchive command line: every command's output in both formats, exit codes, one-line errors."""

from __future__ import annotations

import json

import pytest

from djarchive_client.cli import main
from tests.helpers import run_client as run
from tests.helpers import sha256


@pytest.fixture
def published(archive, seed_files):
    archive.publish("some-set", "000", seed_files)
    archive.publish("other-set", "001", {"a.dat": b"a"})
    archive.publish("other-set", "10", {"a.dat": b"a"})
    archive.publish("other-set", "9", {"a.dat": b"a"})
    return archive


def test_datasets_plain_and_json(published, capsys):
    assert run(capsys, "datasets") == (0, "other-set\nsome-set\n", "")
    code, out, _ = run(capsys, "datasets", "--json")
    assert (code, json.loads(out)) == (0, ["other-set", "some-set"])


def test_revisions_plain_and_json(published, capsys):
    assert run(capsys, "revisions") == (0, "other-set,001\nother-set,9\nother-set,10\nsome-set,000\n", "")
    assert run(capsys, "revisions", "some-set") == (0, "some-set,000\n", "")
    _, out, _ = run(capsys, "revisions", "other-set", "--json")
    assert json.loads(out) == [
        {"dataset": "other-set", "revision": r, "state": "published"} for r in ("001", "9", "10")
    ]


def test_files_plain_and_json(published, seed_files, capsys):
    code, out, _ = run(capsys, "files", "some-set", "000")
    assert code == 0
    expected = [f"{len(seed_files[p])}\t{sha256(seed_files[p])}\t{p}" for p in sorted(seed_files)]
    assert out.splitlines() == expected
    code, out, _ = run(capsys, "--json", "files", "some-set", "000", "--include", "root*")
    assert json.loads(out) == [
        {"path": p, "size": len(seed_files[p]), "sha256": sha256(seed_files[p])}
        for p in ("root.dat", "root2.dat")
    ]


def test_download_and_verify(published, seed_files, capsys, tmp_path):
    target = tmp_path / "t"
    code, out, err = run(capsys, "download", "some-set", "000", str(target))
    assert code == 0
    assert err == ""  # no progress bar off a terminal
    assert out.startswith("some-set 000: 6 files (")
    assert "fetched 6" in out
    assert out.count("\n") == 1
    code, out, _ = run(capsys, "download", "some-set", "000", str(target), "--json")
    summary = json.loads(out)
    assert (summary["fetched_files"], summary["present_files"], summary["ok"]) == (0, 6, True)
    assert run(capsys, "download", "some-set", "000", str(target), "-q") == (0, "", "")

    code, out, _ = run(capsys, "verify", "some-set", "000", str(target))
    assert (code, out) == (0, f"some-set 000 in {target}: intact, 6 files verified\n")
    (target / "root.dat").unlink()
    (target / "sub" / "sub.dat").write_bytes(b"x")
    (target / "notes.txt").write_text("mine")
    code, out, _ = run(capsys, "verify", "some-set", "000", str(target))
    assert code == 1
    assert out.splitlines() == [
        "missing\troot.dat",
        f"modified\tsub/sub.dat\tsize 1, expected {len(seed_files['sub/sub.dat'])}",
        "extra\tnotes.txt",
        f"some-set 000 in {target}: NOT intact: 1 missing, 1 modified, 1 extra file",
    ]
    code, out, _ = run(capsys, "verify", "some-set", "000", str(target), "--json")
    report = json.loads(out)
    assert (code, report["intact"], report["missing"], report["extra"]) == (
        1,
        False,
        ["root.dat"],
        ["notes.txt"],
    )


def test_download_dry_run(published, seed_files, capsys, tmp_path):
    code, out, _ = run(
        capsys, "download", "some-set", "000", str(tmp_path / "t"), "--dry-run", "--include", "sub/*"
    )
    assert code == 0
    lines = out.splitlines()
    assert lines[:-1] == [
        f"fetch\t{len(seed_files[p])}\t{p}" for p in sorted(seed_files) if p.startswith("sub/")
    ]
    assert lines[-1].startswith("would download 3 of 3 files of some-set 000")
    assert not (tmp_path / "t").exists()


def test_partial_failure_lists_files_and_exits_nonzero(published, seed_files, capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("DJARCHIVE_READ_TIMEOUT", "5")
    published.put("some-set/000/root.dat", b"Z" * len(seed_files["root.dat"]))
    from djarchive_common import transfer

    monkeypatch.setattr(transfer.RetryPolicy, "delay", lambda policy, attempt: 0.0)  # no pauses
    code, out, err = run(capsys, "download", "some-set", "000", str(tmp_path / "t"))
    assert code == 1
    lines = err.splitlines()
    assert lines[0].startswith("djarchive: failed: root.dat: sha256 ")
    assert lines[-1] == "djarchive: error: 1 of 6 files of some-set 000 failed to download"
    assert "1 FAILED" in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["revisions", "nope"], "djarchive: error: dataset 'nope' not found"),
        (["files", "some-set", "999"], "djarchive: error: dataset 'some-set' has no revision '999'"),
        (["files", "some-set", "../x"], "djarchive: error: invalid revision name '../x'"),
        (["download", "no-set", "000", "t"], "djarchive: error: dataset 'no-set' not found"),
    ],
)
def test_errors_are_one_line_and_exit_1(published, capsys, argv, message):
    code, out, err = run(capsys, *argv)
    assert code == 1
    assert out == ""
    assert err.count("\n") == 1
    assert err.startswith(message)


def test_unreachable_endpoint(capsys):
    code, out, err = run(capsys, "datasets", "--endpoint", "http://127.0.0.1:9")
    assert (code, out) == (1, "")
    assert err.startswith("djarchive: error: cannot reach 127.0.0.1:9")


def test_debug_shows_the_traceback(capsys):
    code, _, err = run(capsys, "--debug", "datasets", "--endpoint", "http://127.0.0.1:9")
    assert code == 1
    assert "Traceback" in err
    assert err.rstrip().splitlines()[-1].startswith("djarchive: error: cannot reach")


def test_options_before_or_after_the_command(published, capsys):
    assert run(capsys, "--json", "datasets")[1] == run(capsys, "datasets", "--json")[1]
    code, out, err = run(capsys, "datasets", "--bucket", "no-such-bucket-x")
    assert (code, out) == (1, "")
    assert "bucket 'no-such-bucket-x' does not exist" in err


@pytest.mark.parametrize(
    "argv",
    [[], ["frobnicate"], ["download", "a", "b"], ["download", "a", "b", "c", "--jobs", "0"], ["files", "x"]],
)
def test_usage_errors_exit_2(capsys, argv):
    if argv:
        with pytest.raises(SystemExit) as caught:
            main(argv)
        assert caught.value.code == 2
    else:
        assert main(argv) == 2
    assert "usage: djarchive" in capsys.readouterr().err


def test_help_and_version(capsys):
    with pytest.raises(SystemExit) as caught:
        main(["--help"])
    assert caught.value.code == 0
    out = capsys.readouterr().out
    for word in ("datasets", "revisions", "files", "download", "verify", "DJARCHIVE_CLIENT_ENDPOINT"):
        assert word in out
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.startswith("djarchive 0.")


def test_help_does_not_import_heavy_modules():
    import subprocess
    import sys

    code = (
        "import sys; from djarchive_client.cli import build_parser; build_parser().format_help(); "
        "print(sorted(m for m in ('minio', 'datajoint', 'urllib3', 'tqdm') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_minio_is_imported_without_its_admin_api_which_still_loads_on_demand():
    import subprocess
    import sys

    code = (
        "import sys; from djarchive_client import client; client().store.minio; "
        "print(sorted(m for m in ('Crypto', 'argon2', 'minio.minioadmin') if m in sys.modules)); "
        "from minio import MinioAdmin; import minio.minioadmin as admin; "
        "print(MinioAdmin.__module__, admin.MinioAdmin is MinioAdmin, 'Crypto' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.split("\n")[:2] == ["[]", "minio.minioadmin True True"]


def test_progress_bar_when_asked(published, capsys, tmp_path):
    from djarchive_client import client

    client().download("some-set", "000", tmp_path / "t", create_target=True, display_progress=True)
    err = capsys.readouterr().err
    assert "some-set 000" in err
    assert "6/6 files" in err
