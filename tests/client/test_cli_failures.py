"""How the djarchive command line fails: every failing path prints one JSON object on stdout with
--json; configuration problems exit 2 like bad usage; advice names flags, not Python keywords."""

from __future__ import annotations

import json

import pytest

from djarchive_client import client
from djarchive_client.cli import main
from djarchive_common.errors import TransferError
from tests.helpers import run_client as run


@pytest.fixture
def published(archive, seed_files):
    archive.publish("some-set", "000", seed_files)
    return archive


def failure(capsys, *argv, code=1):
    """Run a failing command with --json: its one JSON object (error and type), checked against
    the one error line on stderr."""
    actual, out, err = run(capsys, *argv, "--json")
    assert actual == code, err
    document = json.loads(out)
    assert isinstance(document, dict)
    assert err.rstrip().splitlines()[-1] == f"djarchive: error: {document['error']}"
    return document


def usage_failure(capsys, *argv):
    """A usage error with --json: SystemExit(2), the JSON object on stdout, argparse's usage on stderr."""
    with pytest.raises(SystemExit) as caught:
        main([*argv, "--json"])
    out, err = capsys.readouterr()
    assert caught.value.code == 2
    assert "usage: djarchive" in err
    document = json.loads(out)
    assert document["type"] == "UsageError"
    assert err.rstrip().endswith(f"error: {document['error']}")
    return document


def test_json_failures_of_every_kind(published, capsys, tmp_path):
    assert failure(capsys, "revisions", "nope")["type"] == "DatasetNotFoundError"
    assert failure(capsys, "files", "some-set", "999")["type"] == "RevisionNotFoundError"
    assert failure(capsys, "files", "some-set", "../x")["type"] == "InvalidNameError"
    assert failure(capsys, "download", "some-set", "000", str(tmp_path / "t"), "--bucket", "nowhere-x")[
        "type"
    ] == ("NotFoundError")
    assert failure(capsys, "datasets", "--endpoint", "http://127.0.0.1:9")["type"] == (
        "EndpointUnreachableError"
    )
    document = failure(capsys, "datasets", "--endpoint", "ftp://host", code=2)
    assert document["type"] == "ConfigurationError"


def test_json_usage_errors(capsys):
    assert usage_failure(capsys, "download", "a")["error"] == (
        "the following arguments are required: REVISION, TARGET"
    )
    assert "invalid choice: 'frobnicate'" in usage_failure(capsys, "frobnicate")["error"]
    assert usage_failure(capsys, "download", "a", "b", "c", "--jobs", "0")["error"] == (
        "argument -j/--jobs: must be between 1 and 64"
    )
    assert main(["--json"]) == 2
    out, err = capsys.readouterr()
    assert json.loads(out) == {"error": "no command given", "type": "UsageError"}
    assert "usage: djarchive" in err


def test_usage_errors_without_json_print_nothing_on_stdout(capsys):
    with pytest.raises(SystemExit):
        main(["download", "a"])
    out, err = capsys.readouterr()
    assert out == ""
    assert (
        err.splitlines()[-1]
        == "djarchive download: error: the following arguments are required: REVISION, TARGET"
    )


def test_json_partial_failure_carries_the_summary(published, seed_files, capsys, tmp_path, monkeypatch):
    from djarchive_common import transfer

    published.put("some-set/000/root.dat", b"Z" * len(seed_files["root.dat"]))
    monkeypatch.setattr(transfer.RetryPolicy, "delay", lambda policy, attempt: 0.0)  # no pauses

    document = failure(capsys, "download", "some-set", "000", str(tmp_path / "t"))

    assert document["type"] == "PartialFailureError"
    assert document["error"] == "1 of 6 files of some-set 000 failed to download"
    assert list(document["failed"]) == ["root.dat"]
    assert (document["fetched_files"], document["ok"]) == (5, False)


def test_verify_not_intact_is_a_failure_in_both_formats(published, capsys, tmp_path):
    target = tmp_path / "t"
    assert main(["download", "some-set", "000", str(target), "-q"]) == 0
    (target / "root.dat").unlink()

    code, out, err = run(capsys, "verify", "some-set", "000", str(target))
    assert code == 1
    assert out.splitlines()[0] == "missing\troot.dat"
    assert err == f"djarchive: error: some-set 000 in {target} is not intact: 1 missing, 0 modified\n"

    document = failure(capsys, "verify", "some-set", "000", str(target))
    assert (document["type"], document["intact"], document["missing"]) == (
        "IntegrityError",
        False,
        ["root.dat"],
    )


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("DJARCHIVE_CLIENT_SECURE", "perhaps", "invalid boolean 'perhaps' in DJARCHIVE_CLIENT_SECURE"),
        ("DJARCHIVE_CLIENT_ACCESS_KEY", "only-half", "client access key is configured"),
        ("DJARCHIVE_CLIENT_ENDPOINT", "host:port", "invalid endpoint 'host:port'"),
        ("DJARCHIVE_CLIENT_BUCKET", "a/b", "invalid bucket name 'a/b'"),
        ("DJARCHIVE_LOGLEVEL", "LOUD", "invalid log level 'LOUD'"),
    ],
)
def test_configuration_errors_exit_2(capsys, monkeypatch, variable, value, message):
    monkeypatch.setenv(variable, value)

    code, out, err = run(capsys, "datasets")

    assert (code, out) == (2, "")
    assert err.startswith(f"djarchive: error: {message}")
    assert err.count("\n") == 1


def test_tls_advice_names_the_flag_on_the_command_line_and_the_keyword_in_python(
    published, capsys, monkeypatch
):
    # https to a plain-http server: a TLS failure
    endpoint = published.server.endpoint
    monkeypatch.setenv("DJARCHIVE_CLIENT_ENDPOINT", endpoint)

    code, _, err = run(capsys, "datasets", "--secure")
    assert code == 1
    assert err.rstrip().endswith("for a plain-http endpoint pass --insecure")
    assert "secure=False" not in err

    with pytest.raises(TransferError, match=r"TLS failure") as caught:
        list(client(secure=True).datasets())
    assert str(caught.value).endswith("for a plain-http endpoint pass secure=False")
    assert "--insecure" not in str(caught.value)


def test_an_interrupted_command_says_so_in_json_too(published, capsys, monkeypatch):
    from djarchive_client.archive import DJArchiveClient

    def interrupted(self):
        raise KeyboardInterrupt
        yield  # pragma: no cover

    monkeypatch.setattr(DJArchiveClient, "datasets", interrupted)

    code, out, err = run(capsys, "datasets", "--json")

    assert code == 130
    assert json.loads(out) == {"error": "interrupted", "type": "KeyboardInterrupt"}
    assert err == "djarchive: interrupted\n"
