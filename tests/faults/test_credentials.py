"""Secrets never reach the output: client commands at DEBUG level, with a log file, succeeding and
failing (tracebacks included), with the credentials set through the environment."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from djarchive_client.cli import main
from tests.faults.proxy import Request
from tests.faults.support import error_lines, popen

ACCESS_KEY = "AKIAFAULTTESTACCESS7"
SECRET_KEY = "fault+Test/Secret=Key.with*regex[chars]"
ALIAS_SECRET = "another-Secret-via-the-alias-spelling"
URL_SECRET = "Url-Pasted-Secret-0123456789abcdef"


def run_all(commands: list[list[str]], env: dict[str, str]) -> list[tuple[list[str], int, str, str]]:
    """Run the client command lines concurrently; (argv, exit status, stdout, stderr) of each."""
    processes = [(argv, popen(["-m", "djarchive_client.cli", *argv], env=env)) for argv in commands]
    results = []
    for argv, process in processes:
        out, err = process.communicate(timeout=120)
        results.append((argv, process.returncode, out, err))
    return results


def assert_no_secret(text: str, where: str, secrets: tuple[str, ...] = (ACCESS_KEY, SECRET_KEY)) -> None:
    for secret in secrets:
        assert secret not in text, f"a secret leaked into {where}"
        for piece in (secret[:12], secret[-12:]):  # nor a recognisable part of it
            assert piece not in text, f"part of a secret leaked into {where}"


@pytest.mark.slow
def test_client_commands_at_debug_level_never_print_a_secret(archive, seed_files, via_proxy, tmp_path):
    archive.publish("some-set", "000", seed_files)
    # The first GET of every data file is cut: the retries are logged too. (A GET resumed after
    # the bytes it got asks for another range: the file's path, not the request, is counted.)
    seen: Counter[str] = Counter()

    def first_cut(request: Request, attempt: int) -> str | None:
        seen[request.path] += 1
        return "reset" if seen[request.path] == 1 and "/some-set/000/" in request.target else None

    via_proxy(rule=first_cut)
    logfile = tmp_path / "djarchive.log"
    env = {
        **archive.client_env,
        "DJARCHIVE_CLIENT_ACCESS_KEY": ACCESS_KEY,
        "DJARCHIVE_CLIENT_SECRET_KEY": SECRET_KEY,
        "DJARCHIVE_LOGFILE": str(logfile),
        "DJARCHIVE_LOGLEVEL": "DEBUG",
        "DJARCHIVE_READ_TIMEOUT": "2",
    }
    target = str(tmp_path / "t")
    archive.put("broken/1/djarchive-manifest.csv", b'"1","' + b"0" * 64 + b'","../escape"\n')
    commands = [
        ["--debug", "datasets"],
        ["--debug", "revisions", "some-set"],
        ["--debug", "files", "some-set", "000", "--json"],
        ["--debug", "download", "some-set", "000", target],
        ["--debug", "revisions", "no-such-set"],
        ["--debug", "download", "some-set", "999", target],
        ["--debug", "files", "broken", "1"],
        ["--debug", "datasets", "--bucket", "no-such-bucket-here"],
        ["--debug", "datasets", "--endpoint", "http://127.0.0.1:9"],
    ]
    results = run_all(commands, env)
    results += run_all([["--debug", "verify", "some-set", "000", target]], env)
    failures = 0
    for argv, code, out, err in results:
        assert_no_secret(out, f"the stdout of {argv}")
        assert_no_secret(err, f"the stderr of {argv}")
        assert "DEBUG" in err, f"{argv} logged nothing at DEBUG level: the test would prove nothing"
        if code:
            failures += 1
            assert "Traceback" in err, argv  # --debug shows the traceback: it must be redacted as well
            assert err.rstrip().splitlines()[-1].startswith("djarchive: error: "), argv
    assert [code for _, code, _, _ in results] == [0, 0, 0, 0, 1, 1, 1, 1, 1, 0]
    log = logfile.read_text()
    assert "DEBUG" in log
    assert "retrying" in log  # the faults were hit and logged
    assert_no_secret(log, "the log file")


def test_the_alias_variables_are_redacted_too(archive, seed_files, tmp_path, capsys, monkeypatch):
    archive.publish("some-set", "000", seed_files)
    monkeypatch.setenv("DJARCHIVE_CLIENT_ACCESSKEY", "alias-access-key-0042")
    monkeypatch.setenv("DJARCHIVE_CLIENT_SECRETKEY", ALIAS_SECRET)
    monkeypatch.setenv("DJARCHIVE_LOGFILE", str(tmp_path / "log"))
    assert main(["--debug", "files", "some-set", "999"]) == 1
    out, err = capsys.readouterr()
    secrets = ("alias-access-key-0042", ALIAS_SECRET)
    assert_no_secret(out + err, "the output", secrets)
    assert_no_secret(Path(tmp_path / "log").read_text(), "the log file", secrets)
    assert "DEBUG" in err


@pytest.mark.parametrize(
    "endpoint",
    [
        f"https://{ACCESS_KEY}:{URL_SECRET}@s3.example.org/archive",
        f"ftp://{ACCESS_KEY}:{URL_SECRET}@s3.example.org",
        f"https://{ACCESS_KEY}:{URL_SECRET}@s3.example.org?x=1",
    ],
)
def test_credentials_pasted_into_an_endpoint_url_are_not_echoed(capsys, endpoint):
    assert main(["--debug", "datasets", "--endpoint", endpoint]) == 2  # configuration: bad usage
    out, err = capsys.readouterr()
    assert err.rstrip().splitlines()[-1].startswith("djarchive: error: invalid endpoint")
    assert_no_secret(out + err, "the output", (ACCESS_KEY, URL_SECRET))


def test_credentials_in_a_plain_endpoint_url_are_refused_without_echo(capsys):
    endpoint = f"https://{ACCESS_KEY}:{URL_SECRET}@s3.example.org"
    assert main(["datasets", "--endpoint", endpoint]) == 2
    out, err = capsys.readouterr()
    [line] = error_lines(err, "djarchive")
    assert "credentials do not belong in the URL" in line
    assert_no_secret(out + err, "the output", (ACCESS_KEY, URL_SECRET))


@pytest.mark.parametrize("endpoint", ["http://[oops", "http://[not-an-address]:9000"])
def test_a_malformed_endpoint_url_is_one_clear_line(capsys, endpoint):
    assert main(["datasets", "--endpoint", endpoint]) == 2
    [line] = error_lines(capsys.readouterr().err, "djarchive")
    assert line.startswith("djarchive: error: invalid endpoint")
