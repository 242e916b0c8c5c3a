"""Text that came from elsewhere cannot forge lines or drive the terminal (issue 24): a retraction
reason, an S3 error message, a receipt, local file names. Each is printed escaped; CSV is quoted;
JSON keeps the data as it is."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator

import pytest

from djarchive_client import client
from tests.helpers import assert_safe, s3_error_server
from tests.helpers import run_client as run

REASON = "recalibrated\x1b]0;pwned\x07\nds,999,published"


@pytest.fixture
def retracted(archive):
    from djarchive_admin import admin

    archive.publish("ds", "1", {"a.bin": b"a"})
    archive.publish("ds", "2", {"a.bin": b"b"})
    admin().retract("ds", "1", reason=REASON, superseded_by="2")
    return archive


def test_a_retraction_reason_cannot_forge_a_csv_line_or_set_the_title(retracted, capsys):
    code, out, err = run(capsys, "revisions", "ds", "--all")
    assert code == 0
    assert_safe(out, err)
    assert [row[:3] for row in csv.reader(io.StringIO(out))] == [["ds", "1", "retracted"], ["ds", "2"]]
    assert not any(line.startswith("ds,999") for line in out.splitlines())
    assert "recalibrated\\x1b]0;pwned\\x07\\nds,999,published" in out

    rows = json.loads(run(capsys, "revisions", "ds", "--json")[1])
    assert rows[0]["reason"] == REASON  # JSON carries the data itself


def test_a_retraction_reason_is_escaped_in_every_message(retracted, capsys, tmp_path):
    code, out, err = run(capsys, "download", "ds", "1", str(tmp_path / "t"))
    assert code == 1
    assert_safe(out, err)
    assert err.count("\n") == 1
    assert "\\x1b]0;pwned\\x07\\nds,999" in err

    code, out, err = run(capsys, "download", "ds", "1", str(tmp_path / "t"), "--allow-retracted")
    assert code == 0
    assert_safe(out, err)
    [warning] = [line for line in err.splitlines() if "retracted" in line]
    assert warning.startswith("djarchive: warning: ds 1 was retracted")

    for argv in (["status", str(tmp_path / "t")], ["verify", "ds", "1", str(tmp_path / "t")]):
        code, out, err = run(capsys, *argv)
        assert code == 0
        assert_safe(out, err)
        assert not any(line.startswith("ds,999") for line in (out + err).splitlines())


@pytest.fixture
def weird_server() -> Iterator[str]:
    """Every request answered with an S3 error whose message holds an escaped CR LF (which the XML
    parser decodes) and a line that looks like djarchive's own."""
    message = "try later&#13;&#10;djarchive: all 6 files verified, intact"
    with s3_error_server(400, "SlowDownPlease", message) as url:
        yield url


def test_an_s3_error_message_cannot_forge_a_line(weird_server, capsys):
    code, out, err = run(capsys, "datasets", "--endpoint", weird_server, "--bucket", "some-bucket")
    assert code == 1
    assert_safe(out, err)
    assert err.splitlines() == [err.rstrip("\n")]  # one line
    assert "try later\\r\\ndjarchive: all 6 files verified" in err

    code, out, _ = run(capsys, "datasets", "--endpoint", weird_server, "--bucket", "some-bucket", "--json")
    assert "try later\r\ndjarchive: all 6" in json.loads(out)["error"]


def test_local_file_names_listed_by_verify_are_escaped(archive, capsys, tmp_path):
    archive.publish("ds", "1", {"a.bin": b"a"})
    target = tmp_path / "t"
    client().download("ds", "1", target, create_target=True)
    (target / "a.bin").write_bytes(b"changed")
    (target / "evil\n\x1b]0;pwned\x07name").write_bytes(b"x")

    code, out, err = run(capsys, "verify", "ds", "1", str(target))

    assert code == 1
    assert_safe(out, err)
    assert "extra\tevil\\n\\x1b]0;pwned\\x07name" in out.splitlines()
    assert out.splitlines()[0].startswith("modified\ta.bin\t")


def test_a_receipt_from_elsewhere_is_printed_escaped(archive, capsys, tmp_path):
    archive.publish("ds", "1", {"a.bin": b"a"})
    target = tmp_path / "t"
    client().download("ds", "1", target, create_target=True)
    receipt = target / ".djarchive" / "receipt.json"
    fields = json.loads(receipt.read_text())
    fields["bucket"] = "bucket\x1b]0;pwned\x07\r\nall good: nothing to see"
    receipt.write_text(json.dumps(fields))

    _, out, err = run(capsys, "status", str(target), "--offline")

    assert_safe(out, err)
    assert "all good: nothing to see" not in (out + err).splitlines()
