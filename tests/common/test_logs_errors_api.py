"""Logging (levels, file, redaction), the error tree, and the pinned public API."""

from __future__ import annotations

import logging

import pytest

import djarchive_client
import djarchive_common
from djarchive_client.cli import main
from djarchive_common import errors
from djarchive_common.logs import RedactingFormatter, register_secrets, resolve_log_options, setup_logging
from tests.conftest import CLIENT_ACCESS_KEY, CLIENT_SECRET_KEY

SECRET = "Zx9-very-secret-Key-000"


def test_public_api_is_pinned():
    assert sorted(djarchive_common.__all__) == sorted(
        [
            "DEFAULT_BUCKET", "DEFAULT_ENDPOINT", "MANIFEST_NAME", "ConfigurationError", "DJArchiveError",
            "DatasetNotFoundError", "EndpointUnreachableError", "Entry", "IntegrityError", "InvalidNameError",
            "LocalPathError", "LocalStorageError", "LockedError", "Manifest", "ManifestError",
            "MissingCredentialsError", "NotFoundError", "ObjectNotFoundError", "PartialFailureError",
            "PermissionDeniedError", "RevisionNotFoundError", "RevisionPublishedError",
            "RevisionRetractedError", "Settings", "SignatureError",
            "TransferError", "__version__", "parse_manifest", "read_manifest", "resolve_settings",
            "write_manifest",
        ]
    )  # fmt: skip
    assert sorted(djarchive_client.__all__) == sorted(
        [
            "CopyStatus", "DJArchiveClient", "DJArchiveError", "DatasetNotFoundError", "DownloadSummary",
            "Entry", "IntegrityError", "Manifest", "ManifestDiff", "PartialFailureError",
            "RevisionNotFoundError", "SignatureError", "VerifyReport",
            "__version__", "client",
        ]
    )  # fmt: skip
    for module in (djarchive_common, djarchive_client):
        for name in module.__all__:
            assert hasattr(module, name)


def test_error_tree():
    exits = {"UsageError", "OutputError"}  # the command lines' own, ending the process like argparse
    for name in set(errors.__all__) - exits - {"Hint"}:
        error_class = getattr(errors, name)
        assert issubclass(error_class, errors.DJArchiveError)
    assert all(issubclass(getattr(errors, name), SystemExit) for name in exits)


def test_every_exception_class_is_in_errors():
    import ast
    import builtins
    from pathlib import Path

    exceptions = {name for name, value in vars(builtins).items() if isinstance(value, type)}
    exceptions = {name for name in exceptions if issubclass(getattr(builtins, name), BaseException)}
    exceptions |= set(errors.__all__)
    root = Path(errors.__file__).parents[3]  # packages/
    elsewhere = []
    for path in root.glob("*/src/*/**/*.py"):
        if path == Path(errors.__file__):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ClassDef):
                bases = {
                    base.id if isinstance(base, ast.Name) else getattr(base, "attr", "")
                    for base in node.bases
                }
                if bases & exceptions:
                    elsewhere.append(f"{path.name}: {node.name}")
    assert elsewhere == []
    assert issubclass(errors.NotFoundError, FileNotFoundError)
    assert issubclass(errors.RevisionNotFoundError, errors.NotFoundError)
    assert issubclass(errors.PermissionDeniedError, PermissionError)
    assert issubclass(errors.ManifestError, ValueError)
    assert issubclass(errors.InvalidNameError, ValueError)
    assert issubclass(errors.EndpointUnreachableError, errors.TransferError)
    assert issubclass(errors.MissingCredentialsError, errors.ConfigurationError)
    assert issubclass(errors.SignatureError, errors.IntegrityError)
    assert errors.SignatureError("s", reason="missing").reason == "missing"
    assert str(errors.DatasetNotFoundError("dataset 'x' not found")) == "dataset 'x' not found"
    assert errors.TransferError("t", retryable=True).retryable
    assert not errors.TransferError("t").retryable


def test_formatter_redacts_messages_and_tracebacks():
    register_secrets([SECRET])
    formatter = RedactingFormatter("%(message)s")
    try:
        raise ValueError(f"boom {SECRET}")
    except ValueError:
        import sys

        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "using %s", (SECRET,), sys.exc_info())
    text = formatter.format(record)
    assert SECRET not in text
    assert text.count("<redacted>") == 2


def test_log_level_and_file_from_environment(monkeypatch, tmp_path):
    logfile = tmp_path / "djarchive.log"
    monkeypatch.setenv("DJARCHIVE_LOGLEVEL", "info")
    monkeypatch.setenv("DJARCHIVE_LOGFILE", str(logfile))
    level, path = resolve_log_options()
    assert (level, path) == ("info", str(logfile))
    assert setup_logging(level, path) == logging.INFO
    logging.getLogger("djarchive_client").info("hello %s", "file")
    for handler in logging.getLogger("djarchive_client").handlers:
        handler.flush()
    assert "INFO djarchive_client: hello file" in logfile.read_text()


def test_bad_log_level_is_one_clear_line(monkeypatch, capsys):
    monkeypatch.setenv("DJARCHIVE_LOGLEVEL", "LOUD")
    assert main(["datasets", "--endpoint", "http://127.0.0.1:9"]) == 2  # configuration: bad usage
    assert (
        capsys.readouterr().err
        == "djarchive: error: invalid log level 'LOUD': use DEBUG, INFO, WARNING, ERROR or CRITICAL\n"
    )


def test_debug_output_never_shows_secrets(archive, seed_files, monkeypatch, capsys, tmp_path):
    archive.publish("some-set", "000", seed_files)
    monkeypatch.setenv("DJARCHIVE_CLIENT_ACCESS_KEY", CLIENT_ACCESS_KEY)  # keys the test server accepts
    monkeypatch.setenv("DJARCHIVE_CLIENT_SECRET_KEY", CLIENT_SECRET_KEY)
    monkeypatch.setenv("DJARCHIVE_LOGFILE", str(tmp_path / "debug.log"))
    assert main(["--debug", "download", "some-set", "000", str(tmp_path / "t")]) == 0
    assert main(["--debug", "files", "some-set", "999"]) == 1
    out, err = capsys.readouterr()
    logged = (tmp_path / "debug.log").read_text()
    assert "DEBUG" in err  # minio/urllib3 and our own detail really were logged
    for text in (out, err, logged):
        assert CLIENT_SECRET_KEY not in text
        assert CLIENT_ACCESS_KEY not in text


@pytest.mark.parametrize("level", ["DEBUG", "warning", "Error"])
def test_levels_accepted(level):
    assert setup_logging(level) == logging.getLevelName(level.upper())
