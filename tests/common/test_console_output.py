"""What the consoles print: untrusted text escaped in every line, field and message, CSV quoted,
JSON the same data; advice said with flags on the command line and keywords in Python; output
streams that fail stop the command once."""

from __future__ import annotations

import argparse
import csv
import errno
import io
import json
import logging

import pytest

from djarchive_common.console import Console
from djarchive_common.errors import Hint, LocalPathError, OutputError, RevisionRetractedError
from djarchive_common.logs import setup_logging
from djarchive_common.output import GuardedStream
from djarchive_common.text import escaped, json_escaped

HOSTILE = "ok\x1b]0;pwned\x07\r\nds,999,forged\t\u202egnp.exe\x9b2J\udcff"


def console(**options) -> Console:
    return Console("djarchive", argparse.Namespace(**options), flags={"--force", "--allow-retracted"})


def test_escaped_shows_every_control_character_visibly():
    assert escaped("plain, ünïcödé name") == "plain, ünïcödé name"
    assert escaped(HOSTILE) == "ok\\x1b]0;pwned\\x07\\r\\nds,999,forged\\t\\u202egnp.exe\\x9b2J\\udcff"
    assert escaped("\x00\x7f\u2028\u2066") == "\\x00\\x7f\\u2028\\u2066"


def test_json_keeps_the_data_and_escapes_what_json_leaves_raw():
    document = json_escaped(json.dumps({"reason": HOSTILE}, indent=2, ensure_ascii=False))
    assert json.loads(document) == {"reason": HOSTILE}
    assert all(char.isprintable() or char in "\n " for char in document)


def test_lines_rows_and_messages_cannot_break_or_drive_the_terminal(capsys):
    out = console()
    out.line(f"in the archive: unknown ({HOSTILE})")
    out.row("extra", HOSTILE)
    out.rows([("modified", HOSTILE, "size"), ("a", "row")])
    out.lines(["a line", HOSTILE])
    out.warn(HOSTILE)
    out.error(HOSTILE)
    out.failures({HOSTILE: HOSTILE})
    stdout, stderr = capsys.readouterr()
    for text in (stdout, stderr):
        assert not any(char in text for char in "\x1b\r\u202e\x9b")
    assert stdout.splitlines() == [
        f"in the archive: unknown ({escaped(HOSTILE)})",
        f"extra\t{escaped(HOSTILE)}",
        f"modified\t{escaped(HOSTILE)}\tsize",
        "a\trow",
        "a line",
        escaped(HOSTILE),
    ]
    assert stderr.splitlines() == [
        f"djarchive: warning: {escaped(HOSTILE)}",
        f"djarchive: error: {escaped(HOSTILE)}",
        f"djarchive: failed: {escaped(HOSTILE)}: {escaped(HOSTILE)}",
    ]


def test_csv_is_quoted_by_the_csv_module_and_forges_no_row(capsys):
    console().csv([("ds", "1", "retracted", 'bad "calibration", see\nds,999,published', ""), ("ds", "2")])
    text = capsys.readouterr().out
    rows = list(csv.reader(io.StringIO(text)))
    assert rows == [["ds", "1", "retracted", 'bad "calibration", see\\nds,999,published', ""], ["ds", "2"]]
    assert text.splitlines()[1] == "ds,2"  # plain names print as the original tool's lines


def test_quiet_silences_warnings_not_errors(capsys):
    out = console(quiet=True)
    out.warn("a retraction")
    out.note("a note")
    out.error("a failure")
    assert capsys.readouterr().err == "djarchive: error: a failure\n"


def test_hints_say_keywords_in_python_and_flags_on_the_command_line():
    error = RevisionRetractedError(
        "ds 1 was retracted",
        hint=Hint("allow_retracted", flag="--allow-retracted", text=" ({} reads it anyway)"),
    )
    assert str(error) == "ds 1 was retracted (allow_retracted=True reads it anyway)"
    assert error.message == "ds 1 was retracted"
    assert console().said(error) == "ds 1 was retracted (--allow-retracted reads it anyway)"
    refused = Console("djarchive", argparse.Namespace(), flags={"--trust"})
    assert refused.said(error) == "ds 1 was retracted"  # the command does not accept the flag

    rebuild = Hint(
        "overwrite",
        flag="--overwrite",
        text="; rebuild it with {}",
        function="write_manifest",
        command="manifest",
        argument="my data",
    )
    error = LocalPathError("the manifest does not match", hint=rebuild)
    assert str(error).endswith("rebuild it with write_manifest('my data', overwrite=True)")
    assert refused.said(error).endswith("rebuild it with djarchive manifest --overwrite 'my data'")
    key = Hint("sign_key", flag="--sign-key", metavar="KEYFILE", text=": give {}")
    assert (key.in_python(), key.on_command_line("x")) == (
        ": give sign_key=KEYFILE",
        ": give --sign-key KEYFILE",
    )
    assert Hint("publish", False, flag="--no-publish").in_python() == "; pass publish=False"


def test_a_hint_survives_pickling():
    import pickle

    error = LocalPathError("exists", hint=Hint("overwrite", flag="--overwrite"))
    again = pickle.loads(pickle.dumps(error))
    assert (str(again), again.hint) == (str(error), error.hint)


def test_log_lines_read_like_the_console_and_quiet_keeps_only_errors():
    stream = io.StringIO()
    setup_logging(stream=stream, prog="djarchive")
    logging.getLogger("djarchive_client").warning("lease held by %s", "host\x1b]0;x\x07\nforged")
    assert stream.getvalue() == "djarchive: warning: lease held by host\\x1b]0;x\\x07\\nforged\n"

    quiet = io.StringIO()
    setup_logging(stream=quiet, prog="djarchive", quiet=True)
    logging.getLogger("djarchive_client").warning("a warning")
    logging.getLogger("djarchive_client").error("an error")
    assert quiet.getvalue() == "djarchive: error: an error\n"


class Full(io.StringIO):
    def write(self, text: str) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")


def test_a_failing_stream_stops_once_and_then_drops_everything():
    guarded = GuardedStream(Full(), "stdout")
    with pytest.raises(OutputError) as caught:
        guarded.write("x")
    assert (caught.value.code, caught.value.stream, caught.value.error.errno) == (1, "stdout", errno.ENOSPC)
    assert guarded.write("more") == 4  # dropped: the way out cannot fail a second time
    guarded.flush()


def test_text_the_encoding_cannot_carry_is_written_escaped():
    target = io.TextIOWrapper(io.BytesIO(), encoding="utf-8")
    GuardedStream(target, "stdout").write("name\udcff.bin\n")
    target.flush()
    assert target.buffer.getvalue() == b"name\\udcff.bin\n"
