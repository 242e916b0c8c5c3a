"""--progress jsonl: one JSON event per line (start, file, progress, end), parsed line by line."""

from __future__ import annotations

import json
import os

import pytest

from djarchive_client.cli import main
from tests.helpers import write_tree

FILES = {f"part{n}/data.bin": os.urandom(3000 + n) for n in range(5)}


def events_of(text: str) -> list[dict]:
    lines = [line for line in text.splitlines() if line.strip()]
    return [json.loads(line) for line in lines]


def test_a_download_streams_its_events(archive, tmp_path, capsys):
    archive.publish("ds", "1", FILES)
    target = tmp_path / "t"
    (target / "part0").mkdir(parents=True)
    (target / "part0" / "data.bin").write_bytes(FILES["part0/data.bin"])  # present already
    assert main(["download", "ds", "1", str(target), "--progress", "jsonl"]) == 0
    events = events_of(capsys.readouterr().err)
    assert events[0] == {
        "event": "start", "files": 5, "bytes": sum(map(len, FILES.values())),
        "dataset": "ds", "revision": "1", "target": str(target),
    }  # fmt: skip
    files = {event["path"]: event for event in events if event["event"] == "file"}
    assert set(files) == set(FILES)
    assert files["part0/data.bin"]["status"] == "present"
    assert {files[path]["status"] for path in FILES if path != "part0/data.bin"} == {"fetched"}
    assert all(files[path]["bytes"] == len(FILES[path]) for path in FILES)
    progress = [event for event in events if event["event"] == "progress"]
    assert progress
    assert progress[-1]["files_done"] == 5
    assert progress[-1]["bytes_done"] == sum(map(len, FILES.values()))
    assert events[-1]["event"] == "end"
    assert (events[-1]["ok"], events[-1]["fetched_files"], events[-1]["present_files"]) == (True, 4, 1)


def test_failures_carry_their_reason_and_verify_and_upload_write_to_a_file(archive, tmp_path, capsys):
    from djarchive_admin.cli import main as admin_main

    source = write_tree(tmp_path / "source", FILES)
    log = tmp_path / "events.jsonl"
    assert admin_main(["upload", "ds", "1", str(source), "--events", str(log), "-q"]) == 0
    uploaded = events_of(log.read_text())
    assert uploaded[0]["event"] == "start"
    assert {event["status"] for event in uploaded if event["event"] == "file"} == {"uploaded"}
    assert uploaded[-1]["event"] == "end"

    archive.remove("ds/1/part3/data.bin")
    target = tmp_path / "t"
    capsys.readouterr()
    assert main(["download", "ds", "1", str(target), "--progress", "jsonl"]) == 1
    err = capsys.readouterr().err
    events = events_of("\n".join(line for line in err.splitlines() if line.startswith("{")))
    [failed] = [event for event in events if event["event"] == "file" and event["status"] == "failed"]
    assert failed["path"] == "part3/data.bin"
    assert "not found" in failed["reason"]
    assert events[-1]["event"] == "end"
    assert events[-1]["ok"] is False

    log.unlink()
    assert main(["verify", "ds", "1", str(target), "--events", str(log), "-q"]) == 1
    checked = events_of(log.read_text())
    statuses = {event["path"]: event["status"] for event in checked if event["event"] == "file"}
    assert statuses["part3/data.bin"] == "failed"
    assert statuses["part1/data.bin"] == "verified"
    assert checked[-1]["event"] == "end"
    assert checked[-1]["intact"] is False


class FullDisk:
    """An events file whose disk fills after ``room`` lines."""

    def __init__(self, room: int):
        self.room = room

    def write(self, text: str) -> int:
        import errno

        if self.room == 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self.room -= 1
        return len(text)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass


def test_an_events_file_that_cannot_be_written_is_named(archive, tmp_path, capsys, monkeypatch):
    import builtins

    from djarchive_common import console

    archive.publish("ds", "1", FILES)
    log = str(tmp_path / "events.jsonl")
    opened = builtins.open
    for room in (0, 3):  # the disk is full at the start, or fills during the download
        monkeypatch.setattr(
            console,
            "open",
            lambda path, *a, room=room, **k: FullDisk(room) if path == log else opened(path, *a, **k),
            raising=False,
        )
        code = main(["download", "ds", "1", str(tmp_path / f"t{room}"), "--events", log, "-q"])
        err = capsys.readouterr().err
        assert code == 1
        assert err == f"djarchive: error: cannot write the events to {log}: No space left on device\n", room


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="no /dev/full")
def test_an_events_file_on_a_full_disk_is_named_once(archive, tmp_path, capsys):
    archive.publish("ds", "1", FILES)
    code = main(["download", "ds", "1", str(tmp_path / "t"), "--events", "/dev/full"])
    assert code == 1
    err = capsys.readouterr().err
    assert err == "djarchive: error: cannot write the events to /dev/full: No space left on device\n"
