"""Revisions over time (issue 16): receipts and status, offline verify, upgrades in place,
reuse of local copies, diff, retraction seen from the client."""

from __future__ import annotations

import json
import os

import pytest

from djarchive_client import client, files
from djarchive_client.cli import main
from djarchive_common.errors import LocalPathError, ManifestError, PartialFailureError, RevisionRetractedError
from tests.helpers import read_tree, spy_gets

KiB = 1024
A = {
    "keep/same.bin": b"same" * 1000,
    "change/me.bin": b"old content",
    "move/from.bin": b"moved content" * 100,
    "gone/old.bin": b"removed in B",
    "notes/edited.txt": b"A's notes",
}
B = {
    "keep/same.bin": A["keep/same.bin"],
    "change/me.bin": b"new content!",
    "move/to.bin": A["move/from.bin"],
    "new/added.bin": b"added in B" * 10,
    "notes/edited.txt": b"B's notes",
}


@pytest.fixture
def two(archive):
    archive.publish("ds", "A", A)
    archive.publish("ds", "B", B)
    return archive


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


class Spy:
    """Counts what the store served (data GETs) and what was hashed locally."""

    def __init__(self, monkeypatch):
        self.requests = spy_gets(monkeypatch)
        self.hashed: list[str] = []
        hash_file = files.hash_file

        def spy_hash(fd, known_size=-1):
            result = hash_file(fd, known_size)
            self.hashed.append(result[0])  # the bytes hashed
            return result

        monkeypatch.setattr(files, "hash_file", spy_hash)

    @property
    def gets(self) -> list[str]:
        return [key.split("/", 2)[2] for key, _, _ in self.requests]


# -- diff ----------------------------------------------------------------------------------------


def test_diff_from_the_manifests_alone(two, capsys):
    difference = client().diff("ds", "A", "B")
    assert [e.subpath for e in difference.added] == ["new/added.bin"]
    assert [e.subpath for e in difference.removed] == ["gone/old.bin"]
    assert [new.subpath for _, new in difference.changed] == ["change/me.bin", "notes/edited.txt"]
    assert [(old.subpath, new.subpath) for old, new in difference.moved] == [("move/from.bin", "move/to.bin")]
    assert difference.fetch_bytes == len(B["change/me.bin"]) + len(B["new/added.bin"]) + len(
        B["notes/edited.txt"]
    )
    code, out, _ = run(capsys, "diff", "ds", "A", "B")
    assert code == 0
    assert "moved\t1300\tmove/from.bin -> move/to.bin" in out.splitlines()
    assert out.splitlines()[-1].startswith("ds A -> B: 1 added, 1 removed, 2 changed, 1 moved, 1 unchanged")
    code, out, _ = run(capsys, "diff", "ds", "A", "B", "--json")
    assert json.loads(out)["fetch_bytes"] == difference.fetch_bytes


# -- receipts, status, offline verify ---------------------------------------------------------------


def test_a_download_leaves_a_receipt_that_status_and_offline_verify_read(two, tmp_path, capsys):
    target = tmp_path / "t"
    client().download("ds", "A", target, create_target=True)
    receipt = json.loads((target / ".djarchive" / "receipt.json").read_text())
    assert (receipt["dataset"], receipt["revision"], receipt["state"], receipt["files"]) == (
        "ds",
        "A",
        "complete",
        5,
    )
    assert receipt["bucket"] == two.bucket
    assert (target / ".djarchive" / "manifest.csv").is_file()

    code, out, err = run(capsys, "status", str(target))
    assert code == 0
    assert "in the archive: published" in out
    assert err == "djarchive: warning: newer revisions of ds are published: B\n"

    for subpath in A:  # offline: the data may be gone from the store
        two.remove(f"ds/A/{subpath}")
    assert run(capsys, "verify", str(target))[0] == 0
    (target / "keep" / "same.bin").write_bytes(b"tampered")
    code, out, _ = run(capsys, "verify", str(target))
    assert code == 1
    assert "modified\tkeep/same.bin" in out


def test_a_tampered_stored_manifest_is_refused_before_anything_is_checked(two, tmp_path, capsys):
    target = tmp_path / "t"
    client().download("ds", "A", target, create_target=True)
    stored = target / ".djarchive" / "manifest.csv"
    stored.write_bytes(stored.read_bytes().replace(b"gone/old.bin", b"gone/odd.bin"))
    with pytest.raises(ManifestError, match="was changed since djarchive wrote it"):
        client().verify_local(target)
    code, out, err = run(capsys, "verify", str(target))
    assert (code, out) == (1, "")
    assert err.count("\n") == 1


def test_status_of_a_folder_without_receipt_and_verify_usage(tmp_path, capsys, archive):
    (tmp_path / "plain").mkdir()
    code, out, _ = run(capsys, "status", str(tmp_path / "plain"))
    assert code == 1
    assert "no djarchive receipt" in out
    code, _, err = run(capsys, "verify", "ds", str(tmp_path / "plain"))
    assert code == 2
    assert "give DATASET REVISION TARGET, or TARGET alone" in err


# -- upgrades in place --------------------------------------------------------------------------------


def test_an_upgrade_fetches_only_what_changed_and_removes_what_is_gone(two, tmp_path, monkeypatch):
    target = tmp_path / "t"
    client().download("ds", "A", target, create_target=True)
    moved_inode = (target / "move" / "from.bin").stat().st_ino
    (target / "mine.txt").write_bytes(b"a file of mine")
    spy = Spy(monkeypatch)
    summary = client().download("ds", "B", target)
    assert read_tree(target) == {**B, "mine.txt": b"a file of mine"}
    assert sorted(spy.gets) == ["change/me.bin", "new/added.bin", "notes/edited.txt"]
    assert spy.hashed == []  # the record vouched for every file of A
    assert (target / "move" / "to.bin").stat().st_ino == moved_inode  # renamed, not copied
    assert summary.removed == ["gone/old.bin"]
    assert (summary.upgraded_from, summary.reused_files) == ("A", 1)
    assert not (target / "gone").exists()  # the folder it left empty went too
    receipt = json.loads((target / ".djarchive" / "receipt.json").read_text())
    assert (receipt["revision"], receipt["state"]) == ("B", "complete")
    assert client().verify_local(target).intact


def test_files_the_user_changed_are_never_overwritten_or_removed(two, tmp_path, capsys):
    target = tmp_path / "t"
    client().download("ds", "A", target, create_target=True)
    (target / "notes" / "edited.txt").write_bytes(b"my own notes")  # B changes this file
    (target / "gone" / "old.bin").write_bytes(b"my changes")  # B removes this file
    (target / "new").mkdir()
    (target / "new" / "added.bin").write_bytes(b"mine, where B adds a file")

    code, out, err = run(capsys, "download", "ds", "B", str(target), "--dry-run")
    assert code == 0
    assert "conflict\t-\tnotes/edited.txt: changed locally" in out
    assert "conflict\t-\tnew/added.bin: a file of yours" in out
    assert "leave\t-\tgone/old.bin: changed locally" in out
    assert "move\t1300\tmove/from.bin -> move/to.bin" in out
    assert (target / "move" / "from.bin").exists()  # a dry run changes nothing

    code, out, err = run(capsys, "download", "ds", "B", str(target))
    assert code == 1
    assert "notes/edited.txt: changed locally" in err
    assert "move it away" in err
    assert (target / "notes" / "edited.txt").read_bytes() == b"my own notes"
    assert (target / "gone" / "old.bin").read_bytes() == b"my changes"
    assert (target / "new" / "added.bin").read_bytes() == b"mine, where B adds a file"
    assert (target / "change" / "me.bin").read_bytes() == B["change/me.bin"]  # the rest went ahead
    code, out, _ = run(capsys, "status", str(target))
    assert "did not finish" in out

    (target / "notes" / "edited.txt").unlink()
    (target / "new" / "added.bin").unlink()
    assert run(capsys, "download", "ds", "B", str(target), "-q")[0] == 0  # the interrupted upgrade resumes
    assert read_tree(target) == {**B, "gone/old.bin": b"my changes"}
    assert "did not finish" not in run(capsys, "status", str(target))[1]


def test_a_shard_run_never_overwrites_what_a_plain_run_would_not(two, tmp_path, capsys):
    target = tmp_path / "t"
    client().download("ds", "A", target, create_target=True)
    (target / "notes" / "edited.txt").write_bytes(b"my own notes")  # B changes this file
    (target / "new").mkdir()
    (target / "new" / "added.bin").write_bytes(b"mine, where B adds a file")
    code, _, err = run(capsys, "download", "ds", "B", str(target), "--shard", "1/1")
    assert code == 1
    assert "notes/edited.txt: changed locally" in err
    assert "new/added.bin: a file of yours" in err
    assert (target / "notes" / "edited.txt").read_bytes() == b"my own notes"
    assert (target / "new" / "added.bin").read_bytes() == b"mine, where B adds a file"
    assert (target / "change" / "me.bin").read_bytes() == B["change/me.bin"]  # the rest went ahead
    assert (target / "gone" / "old.bin").exists()  # a shard removes nothing: the plain run finishes
    assert (target / "move" / "from.bin").exists()
    (target / "notes" / "edited.txt").unlink()
    (target / "new" / "added.bin").unlink()
    for k in (1, 2):
        assert run(capsys, "download", "ds", "B", str(target), "--shard", f"{k}/2", "-q")[0] == 0
    assert run(capsys, "download", "ds", "B", str(target), "-q")[0] == 0
    assert read_tree(target) == B
    assert client().verify_local(target).intact


def test_an_upgrade_with_a_selection_changes_only_what_it_selects(two, tmp_path, capsys):
    target = tmp_path / "t"
    client().download("ds", "A", target, create_target=True)
    code, out, _ = run(capsys, "download", "ds", "B", str(target), "--include", "change/*", "--dry-run")
    assert code == 0
    assert [line.split("\t")[0] for line in out.splitlines() if "\t" in line] == ["fetch"]
    summary = client().download("ds", "B", target, include=["change/*", "gone/*", "new/*"])
    assert summary.removed == ["gone/old.bin"]  # selected, and B does not have it
    assert read_tree(target) == {
        "keep/same.bin": A["keep/same.bin"],
        "move/from.bin": A["move/from.bin"],  # not selected: not moved
        "notes/edited.txt": A["notes/edited.txt"],  # not selected: A's still
        "change/me.bin": B["change/me.bin"],
        "new/added.bin": B["new/added.bin"],
    }
    receipt = json.loads((target / ".djarchive" / "receipt.json").read_text())
    assert (receipt["revision"], receipt["include"]) == ("B", ["change/*", "gone/*", "new/*"])
    assert client().verify_local(target).intact


def test_a_folder_holding_another_dataset_is_refused(two, tmp_path):
    two.publish("other", "1", {"x": b"x"})
    target = tmp_path / "t"
    client().download("ds", "A", target, create_target=True)
    with pytest.raises(LocalPathError, match="holds ds A, not other"):
        client().download("other", "1", target)


# -- reuse of other local copies -----------------------------------------------------------------------


def test_reuse_takes_identical_content_from_another_copy(two, tmp_path, monkeypatch):
    first = tmp_path / "first"
    client().download("ds", "A", first, create_target=True)
    for subpath in A:  # gone from the store: only the other copy can provide these
        if subpath in ("keep/same.bin", "move/from.bin"):
            two.remove(f"ds/B/{subpath.replace('from', 'to')}")
    spy = Spy(monkeypatch)
    summary = client().download("ds", "B", tmp_path / "second", create_target=True, reuse=[first])
    assert read_tree(tmp_path / "second") == B
    assert summary.reused_files == 2
    assert summary.reused_bytes == len(A["keep/same.bin"]) + len(A["move/from.bin"])
    assert "keep/same.bin" not in spy.gets
    assert "move/to.bin" not in spy.gets


@pytest.mark.parametrize("fool_the_record", [False, True])
def test_reused_content_is_checked_and_fetched_when_damaged(two, tmp_path, fool_the_record):
    first = tmp_path / "first"
    client().download("ds", "A", first, create_target=True)
    path = first / "keep" / "same.bin"
    stat = path.stat()
    path.write_bytes(b"x" * len(A["keep/same.bin"]))
    if fool_the_record:  # the other copy's record is fooled: it is no evidence anyway
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    else:
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    summary = client().download("ds", "B", tmp_path / "second", create_target=True, reuse=[first])
    assert read_tree(tmp_path / "second") == B
    assert summary.reused_files == 1  # only the moved file's content


def test_link_shares_the_file(two, tmp_path):
    first = tmp_path / "first"
    client().download("ds", "A", first, create_target=True)
    client().download("ds", "B", tmp_path / "second", create_target=True, reuse=[first], link=True)
    assert (tmp_path / "second" / "keep" / "same.bin").stat().st_ino == (
        first / "keep" / "same.bin"
    ).stat().st_ino


# -- retraction seen by researchers --------------------------------------------------------------------


def test_a_retracted_revision_is_listed_with_why_refused_and_reproducible(two, tmp_path, capsys):
    from djarchive_admin import admin

    target = tmp_path / "t"
    client().download("ds", "A", target, create_target=True)
    admin().retract("ds", "A", reason="wrong calibration", superseded_by="B")

    assert run(capsys, "revisions", "ds")[1] == "ds,B\n"
    assert run(capsys, "revisions", "ds", "--all")[1] == "ds,A,retracted,wrong calibration,B\nds,B\n"
    rows = json.loads(run(capsys, "revisions", "--json")[1])
    assert rows[0] == {
        "dataset": "ds",
        "revision": "A",
        "state": "retracted",
        "reason": "wrong calibration",
        "superseded_by": "B",
        "retracted_at": rows[0]["retracted_at"],
    }
    with pytest.raises(
        RevisionRetractedError,
        match=r"ds A was retracted on .*: wrong calibration; use B instead \(allow_retracted=True reads it",
    ):
        client().download("ds", "A", tmp_path / "again", create_target=True)
    code, _, err = run(capsys, "download", "ds", "A", str(tmp_path / "again"))
    assert code == 1
    assert "wrong calibration; use B instead (--allow-retracted reads it anyway)" in err
    assert not (tmp_path / "again").exists()

    code, _, err = run(capsys, "download", "ds", "A", str(tmp_path / "again"), "--allow-retracted")
    assert code == 0
    [warning] = err.splitlines()
    assert warning.startswith("djarchive: warning: ds A was retracted")
    assert warning.endswith("; downloaded anyway (--allow-retracted)")
    assert read_tree(tmp_path / "again") == A

    code, out, err = run(capsys, "status", str(target))
    assert "in the archive: retracted" in out
    assert "djarchive: warning: ds A was retracted" in err
    report = client().verify("ds", "A", target)
    assert report.intact
    assert "wrong calibration" in report.note


def test_partial_failure_keeps_the_copy_marked_unfinished(two, tmp_path):
    target = tmp_path / "t"
    client().download("ds", "A", target, create_target=True)
    two.remove("ds/B/new/added.bin")
    with pytest.raises(PartialFailureError):
        client().download("ds", "B", target)
    receipt = json.loads((target / ".djarchive" / "receipt.json").read_text())
    assert (receipt["state"], receipt["previous"], receipt["revision"]) == ("upgrading", "A", "B")


def test_the_receipt_and_status_name_the_signer(archive, tmp_path, capsys):
    from djarchive_admin import admin
    from djarchive_admin.archive import keygen

    public, key_id, _ = keygen(tmp_path / "curator.key")
    source = tmp_path / "source"
    source.mkdir()
    (source / "a.dat").write_bytes(b"signed data")
    admin(sign_key=str(tmp_path / "curator.key")).upload("ds", "1", source)
    target = tmp_path / "t"
    client(trusted_keys=[public]).download("ds", "1", target, create_target=True)
    receipt = json.loads((target / ".djarchive" / "receipt.json").read_text())
    assert (receipt["signature"]["status"], receipt["signature"]["signer"]) == ("valid", key_id)
    assert f"signed by key {key_id}" in run(capsys, "status", str(target), "--offline")[1]
