"""What a newcomer reads from ``djarchive`` (issue 26): warnings through the console once, on
stderr, silenced by -q; advice naming only options the command accepts, as flags; clear words
for the usual mistakes."""

from __future__ import annotations

import json
import sys

import pytest

from djarchive_client import client
from djarchive_common.errors import ConfigurationError
from tests.helpers import run_client as run
from tests.helpers import s3_error_server

WARNING = "djarchive: warning: ds 1 was retracted"


@pytest.fixture
def retracted(archive):
    from djarchive_admin import admin

    archive.publish("ds", "1", {"a.bin": b"a", "b.bin": b"b"})
    archive.publish("ds", "2", {"a.bin": b"A", "b.bin": b"b"})
    admin().retract("ds", "1", reason="wrong calibration", superseded_by="2")
    return archive


def test_a_retraction_is_one_warning_on_stderr_and_quiet_silences_it(retracted, capsys, tmp_path):
    target = str(tmp_path / "t")
    for argv in (
        ["download", "ds", "1", target, "--allow-retracted"],
        ["verify", "ds", "1", target],
        ["diff", "ds", "1", "2"],
        ["files", "ds", "1", "--allow-retracted"],
        ["signature", "ds", "1", "--allow-retracted"],
    ):
        code, out, err = run(capsys, *argv)
        assert code == 0, err
        [line] = err.splitlines()
        assert line.startswith(WARNING), argv
        assert "wrong calibration; use 2 instead" in line
        assert "retracted" not in out, argv
        code, out, err = run(capsys, *argv, "-q")
        assert (code, err) == (0, ""), argv


def test_the_advice_for_a_retracted_revision_is_an_option_the_command_accepts(retracted, capsys, tmp_path):
    for argv in (
        ["files", "ds", "1"],
        ["signature", "ds", "1"],
        ["download", "ds", "1", str(tmp_path / "t")],
    ):
        code, _, err = run(capsys, *argv)
        assert code == 1
        assert err.endswith("use 2 instead (--allow-retracted reads it anyway)\n"), argv
        assert "allow_retracted" not in err


def test_a_trusted_key_is_named_by_the_flag_that_gave_it(archive, capsys, tmp_path):
    from djarchive_admin import admin
    from djarchive_admin.archive import keygen
    from tests.helpers import write_tree

    keygen(tmp_path / "curator.key")
    _, other_id, other = keygen(tmp_path / "other.key")
    admin().upload(
        "ds", "1", write_tree(tmp_path / "source", {"a.bin": b"a"}), sign_key=tmp_path / "curator.key"
    )

    code, _, err = run(capsys, "files", "ds", "1", "--trust", other)

    assert code == 1
    assert err.rstrip().endswith(f"(trusted: {other_id} from --trust)")
    assert "trusted_keys" not in err


def test_link_needs_reuse(capsys, tmp_path):
    code, out, err = run(capsys, "download", "ds", "1", str(tmp_path / "t"), "--link")
    assert (code, out) == (2, "")
    assert err.startswith("usage: djarchive download ")
    assert err.endswith("djarchive: error: --link needs --reuse DIR (the copy to link files from)\n")
    code, out, _ = run(capsys, "download", "ds", "1", str(tmp_path / "t"), "--link", "--json")
    assert json.loads(out)["type"] == "UsageError"
    with pytest.raises(ConfigurationError, match=r"link=True .* needs reuse=; give reuse=DIR"):
        client(endpoint="127.0.0.1:9").download("ds", "1", tmp_path / "t", link=True)
    assert not (tmp_path / "t").exists()


@pytest.mark.parametrize(
    ("how", "where"),
    [
        (["--bucket", "bad/bucket"], "--bucket"),
        (["--bucket", "ab"], "--bucket"),
        (["--bucket", "192.168.1.1"], "--bucket"),
        ({"DJARCHIVE_CLIENT_BUCKET": "Bad Bucket"}, "DJARCHIVE_CLIENT_BUCKET"),
    ],
)
def test_a_bad_bucket_name_is_a_usage_error_naming_its_setting(capsys, monkeypatch, how, where):
    argv = how if isinstance(how, list) else []
    for name, value in ({} if isinstance(how, list) else how).items():
        monkeypatch.setenv(name, value)
    code, out, err = run(capsys, "datasets", *argv)
    assert (code, out) == (2, "")
    assert err.startswith("djarchive: error: invalid bucket name ")
    assert f"({where}): " in err
    assert err.count("\n") == 1


def test_the_library_names_the_keyword():
    with pytest.raises(ConfigurationError, match=r"invalid bucket name 'ab' \(bucket=\): use 3 to 63"):
        client(bucket="ab")


def test_a_403_to_an_anonymous_client_says_it_was_anonymous(capsys, monkeypatch):
    with s3_error_server(403, "AccessDenied", "Access Denied") as url:
        code, _, err = run(capsys, "datasets", "--endpoint", url, "--bucket", "private-bucket")
        assert code == 1
        assert "access denied by " in err
        assert "to an anonymous client: the bucket does not allow public reads; set " in err
        assert "DJARCHIVE_CLIENT_ACCESS_KEY and DJARCHIVE_CLIENT_SECRET_KEY" in err

        monkeypatch.setenv("DJARCHIVE_CLIENT_ACCESS_KEY", "some-access-key")
        monkeypatch.setenv("DJARCHIVE_CLIENT_SECRET_KEY", "some-secret-key")
        code, _, err = run(capsys, "datasets", "--endpoint", url, "--bucket", "private-bucket")
        assert code == 1
        assert "anonymous" not in err
        assert "check the credentials and their permissions" in err


def test_an_interrupted_download_says_that_running_it_again_resumes(archive, capsys, monkeypatch, tmp_path):
    from djarchive_client.archive import DJArchiveClient

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(DJArchiveClient, "download", interrupted)
    code, _, err = run(capsys, "download", "ds", "1", str(tmp_path / "t"))
    assert code == 130
    assert err == "djarchive: interrupted: run the same download again to resume\n"


def test_the_verify_usage_line_says_what_it_accepts(capsys, tmp_path):
    code, _, err = run(capsys, "verify", "ds", str(tmp_path))
    assert code == 2
    usage = err.split("djarchive: error:")[0]
    assert usage.startswith("usage: djarchive verify [-h]")
    assert usage.rstrip().endswith("[DATASET REVISION] TARGET")
    assert "..." not in usage
    assert err.endswith("djarchive: error: give DATASET REVISION TARGET, or TARGET alone\n")


def test_the_dry_run_of_an_upgrade_sums_up_what_it_keeps(archive, capsys, tmp_path):
    same = {f"same/{n:02d}.bin": bytes([n]) * 1000 for n in range(24)}
    archive.publish("ds", "1", {**same, "old/moved.bin": b"m" * 500, "changed.bin": b"1"})
    archive.publish("ds", "2", {**same, "new/moved.bin": b"m" * 500, "changed.bin": b"2", "added.bin": b"+"})
    client().download("ds", "1", tmp_path / "t", create_target=True)

    code, out, _ = run(capsys, "download", "ds", "2", str(tmp_path / "t"), "--dry-run")

    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "keep 24 files (24.0 kB)"
    assert not any(line.startswith("keep\t") for line in lines)
    assert "move\t500\told/moved.bin -> new/moved.bin" in lines
    assert {"fetch\t1\tadded.bin", "fetch\t1\tchanged.bin"} <= set(lines)
    actions = json.loads(run(capsys, "download", "ds", "2", str(tmp_path / "t"), "--dry-run", "--json")[1])
    assert sum(action[0] == "keep" for action in actions["actions"]) == 24  # JSON lists every action


def test_an_unfinished_first_download_reads_the_same_in_status_and_verify(archive, capsys, tmp_path):
    archive.publish("ds", "1", {"a.bin": b"a"})
    target = tmp_path / "t"
    client().download("ds", "1", target, create_target=True)
    (target / ".djarchive" / "receipt.json").unlink()  # as a first download stopped before its end

    for argv in (["status", str(target)], ["verify", str(target)]):
        code, out, err = run(capsys, *argv)
        assert code == 1, argv
        assert "incomplete — run the same download again to resume" in out + err, argv


def test_a_dataset_whose_revisions_are_all_retracted_is_not_called_unknown(retracted, capsys):
    from djarchive_admin import admin

    admin().retract("ds", "2", reason="also wrong")

    code, _, err = run(capsys, "revisions", "ds")

    assert code == 1
    assert "not found" not in err
    assert "no published revision" in err
    assert "1 (wrong calibration)" in err
    assert "2 (also wrong)" in err


@pytest.mark.skipif(sys.platform == "win32", reason="flock")
def test_status_of_a_copy_being_downloaded_says_so_instead_of_advising_to_run_it_again(
    archive, capsys, tmp_path
):
    import fcntl

    archive.publish("ds", "1", {"a.bin": b"a"})
    target = tmp_path / "t"
    client().download("ds", "1", target, create_target=True)
    (target / ".djarchive" / "receipt.json").unlink()  # a first download, still at work:
    with open(target / ".djarchive" / "lock", "rb") as lock:  # its lock held, its pid beside it
        fcntl.flock(lock, fcntl.LOCK_EX)
        (target / ".djarchive" / "lock.pid").write_text("4242")
        for argv in (["status", str(target)], ["verify", str(target)]):
            code, out, err = run(capsys, *argv)
            assert code == 1, argv
            assert "incomplete — another djarchive process (pid 4242) is downloading into it" in out + err
            assert "run the same download again" not in out + err
        assert json.loads(run(capsys, "status", str(target), "--json")[1])["running"] == {"pid": 4242}
    code, out, _ = run(capsys, "status", str(target))
    assert "incomplete — run the same download again to resume" in out  # once it has stopped
    assert json.loads(run(capsys, "status", str(target), "--json")[1])["running"] is None


def test_the_files_fetched_by_their_chunks_are_counted_with_the_fetched_ones():
    from djarchive_client.summary import DownloadSummary

    summary = DownloadSummary(
        "ds", "2", "t", files=3, bytes=90_000_000, fetched_files=2, fetched_bytes=2_000_000, present_files=1,
        delta_files=1, delta_bytes=83_886_880, seconds=0.5, upgraded_from="1",
    )  # fmt: skip
    assert str(summary) == (
        "ds 2 (upgraded from 1): 3 files (90.0 MB) in t; fetched 2 (2.0 MB; 1 by its changed chunks, "
        "of 83.9 MB), 1 already present in 0.5 s (4.0 MB/s)"
    )
    summary.delta_files = 2
    assert "fetched 2 (2.0 MB; 2 by their changed chunks, of 83.9 MB), 1 already present" in str(summary)
