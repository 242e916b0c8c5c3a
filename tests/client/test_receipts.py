"""What a copy's receipt may and may not make djarchive do (issue 24): it never sends the user's
credentials to the archive it names, a changed published revision is noticed, and ``status``
says what the receipt proves (and that it was recorded, not checked again)."""

from __future__ import annotations

import json
import socket
import threading
from pathlib import Path

import pytest

from djarchive_client import client
from tests.faults.support import error_lines
from tests.helpers import read_tree
from tests.helpers import run_client as run

FILES = {"a/x.bin": b"x" * 100, "top.bin": b"top"}


class Listener:
    """A TCP port on 127.0.0.1 that counts the connections made to it (and answers none)."""

    def __init__(self) -> None:
        self.socket = socket.create_server(("127.0.0.1", 0))
        self.socket.settimeout(0.2)
        self.port = self.socket.getsockname()[1]
        self.connections = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                connection, _ = self.socket.accept()
            except OSError:
                continue
            self.connections += 1
            connection.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.socket.close()


@pytest.fixture
def listener():
    started = Listener()
    yield started
    started.close()


def rewrite_receipt(target: Path, **fields: object) -> None:
    path = target / ".djarchive" / "receipt.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), **fields}))


# -- 4. the receipt names where the copy came from; only the configured archive is asked -------------


@pytest.mark.parametrize(
    "elsewhere",
    [{"endpoint": "LISTENER"}, {"bucket": "another-bucket"}, {"secure": True}],
    ids=["another host", "another bucket", "another scheme"],
)
def test_status_never_asks_the_archive_a_receipt_names_with_the_users_keys(
    archive, tmp_path, capsys, monkeypatch, listener, elsewhere
):
    archive.publish("ds", "1", FILES)
    target = tmp_path / "t"
    client().download("ds", "1", target, create_target=True)
    if elsewhere.get("endpoint") == "LISTENER":
        elsewhere = {"endpoint": f"127.0.0.1:{listener.port}"}
    rewrite_receipt(target, **elsewhere)
    monkeypatch.setenv("DJARCHIVE_CLIENT_ACCESS_KEY", "AKIDUSERSOWNKEY")
    monkeypatch.setenv("DJARCHIVE_CLIENT_SECRET_KEY", "users-own-secret")
    code, out, err = run(capsys, "status", str(target))
    assert listener.connections == 0
    assert (code, err) == (0, "")
    configured = f"http://{archive.server.endpoint}/{archive.bucket}"
    assert "this copy came from " in out
    assert f"; the configured archive is {configured}: not checked" in out
    assert "in the archive: published" not in out
    status = client().status(target)
    assert status.archive is None
    assert "the configured archive is" in status.elsewhere
    assert json.loads(run(capsys, "status", str(target), "--json")[1])["elsewhere"] == status.elsewhere


# -- 9. what status says of the receipt, and of a copy without one ------------------------------------


def test_status_says_the_signer_was_recorded_at_download(archive, tmp_path, capsys):
    archive.publish("ds", "1", FILES)
    target = tmp_path / "t"
    client().download("ds", "1", target, create_target=True)
    rewrite_receipt(target, signature={"status": "valid", "signer": "ab12cd34"})
    out = run(capsys, "status", str(target), "--offline")[1]
    assert "signed by key ab12cd34 (recorded at download, not re-checked)" in out


def test_status_of_an_unfinished_first_download_says_how_to_resume(archive, tmp_path, capsys, monkeypatch):
    from djarchive_client import download

    archive.publish("ds", "1", FILES)
    target = tmp_path / "t"

    def killed(*args, **kwargs):
        raise KeyboardInterrupt  # the run dies before its receipt

    monkeypatch.setattr(download, "_receipt", killed)
    with pytest.raises(KeyboardInterrupt):
        client().download("ds", "1", target, create_target=True)
    monkeypatch.undo()
    code, out, _ = run(capsys, "status", str(target))
    assert code == 1
    assert out.strip() == f"{target}: incomplete — run the same download again to resume"
    assert json.loads(run(capsys, "status", str(target), "--json")[1])["incomplete"] is True
    (tmp_path / "plain").mkdir()
    assert "no djarchive receipt" in run(capsys, "status", str(tmp_path / "plain"))[1]


def test_a_target_that_is_a_file_gets_one_wording_everywhere(archive, tmp_path, capsys):
    archive.publish("ds", "1", FILES)
    afile = tmp_path / "afile.txt"
    afile.write_text("mine")
    lines = []
    for argv in (
        ["download", "ds", "1", str(afile)],
        ["verify", "ds", "1", str(afile)],
        ["verify", str(afile)],
        ["status", str(afile)],
    ):
        code, _, err = run(capsys, *argv)
        [line] = error_lines(err, "djarchive")
        assert code in (1, 2), argv
        lines.append(line.split("error: ", 1)[1])
    assert set(lines) == {f"{str(afile)!r} is not a folder"}, lines
    assert afile.read_text() == "mine"


# -- 7. a published revision that changed since the copy was made is noticed -------------------------


def republish(archive, files: dict[str, bytes]) -> None:
    """What a curator's forced republish leaves: revision 1 of ds, with other content."""
    for key in archive.keys("ds/1/"):
        archive.remove(key)
    archive.publish("ds", "1", files)


def test_a_forced_republish_stops_the_download_until_accepted(archive, tmp_path, capsys):
    archive.publish("ds", "1", FILES)
    target = tmp_path / "t"
    client().download("ds", "1", target, create_target=True)
    old = json.loads((target / ".djarchive" / "receipt.json").read_text())["manifest_sha256"]
    (target / "mine.txt").write_bytes(b"a file of mine")
    changed = {"a/x.bin": b"y" * 100, "new.bin": b"new"}  # top.bin gone, a/x.bin changed
    republish(archive, changed)
    new = client().manifest("ds", "1").sha256

    code, _, err = run(capsys, "download", "ds", "1", str(target))
    assert code == 1
    [line] = error_lines(err, "djarchive")
    assert old in line
    assert new in line
    assert "--accept-republished" in line
    assert (target / "a" / "x.bin").read_bytes() == FILES["a/x.bin"]  # nothing changed
    assert not (target / "new.bin").exists()

    for argv in (["status", str(target)], ["verify", "ds", "1", str(target)]):
        err = run(capsys, *argv)[2]  # a warning
        assert "djarchive: warning: " in err, argv
        assert "changed in the archive since this copy was made" in err, argv
        assert old in err
        assert new in err
    assert old in client().status(target).republished
    assert new in client().verify("ds", "1", target).republished

    code, _, err = run(capsys, "download", "ds", "1", str(target), "--accept-republished", "-q")
    assert (code, err) == (0, "")
    assert read_tree(target) == {**changed, "mine.txt": b"a file of mine"}  # upgraded; yours kept
    assert json.loads((target / ".djarchive" / "receipt.json").read_text())["manifest_sha256"] == new
    assert run(capsys, "download", "ds", "1", str(target), "-q")[0] == 0
    assert "changed in the archive" not in run(capsys, "status", str(target))[1]


def test_the_library_takes_the_same_decision(archive, tmp_path):
    from djarchive_common.errors import RevisionChangedError

    archive.publish("ds", "1", FILES)
    target = tmp_path / "t"
    client().download("ds", "1", target, create_target=True)
    republish(archive, {"top.bin": b"other"})
    with pytest.raises(RevisionChangedError, match="accept_republished=True"):
        client().download("ds", "1", target)
    with pytest.raises(RevisionChangedError):
        client().download("ds", "1", target, shard=(1, 1))
    assert client().download("ds", "1", target, accept_republished=True).ok
    assert read_tree(target) == {"top.bin": b"other"}


def test_a_copy_brought_to_its_republished_revision_is_not_called_an_upgrade(archive, tmp_path, capsys):
    archive.publish("ds", "1", FILES)
    target = tmp_path / "t"
    client().download("ds", "1", target, create_target=True)
    republish(archive, {**FILES, "top.bin": b"TOP"})

    for argv in (["--dry-run"], []):
        code, out, _ = run(capsys, "download", "ds", "1", str(target), "--accept-republished", *argv)
        assert code == 0
        assert "from 1" not in out, argv  # "ds 1 (upgraded from 1)" says nothing
        assert "republished" in out.splitlines()[-1], argv
