"""Which transport carries the bulk bodies: libcurl where pycurl imports, minio otherwise (one debug
line says so), DJARCHIVE_TRANSPORT forcing one; downloads and uploads on each; pycurl never
imported by a run with nothing to move."""

from __future__ import annotations

import logging
import os
import subprocess
import sys

import pytest

from djarchive_client import client
from djarchive_client.cli import main
from djarchive_common import transport
from djarchive_common.curl import CurlEngine
from djarchive_common.errors import ConfigurationError
from tests.helpers import read_tree, spy_gets

FILES = {"a.bin": os.urandom(3000), "sub/b.bin": os.urandom(70_000), "empty": b""}


@pytest.fixture
def fresh_choice(monkeypatch) -> None:
    """Forget the choice this process made (it is made once per value asked for)."""
    monkeypatch.setattr(transport, "_chosen", {})


@pytest.fixture
def no_pycurl(monkeypatch, fresh_choice) -> None:
    """pycurl cannot be imported, as after an install with --no-deps."""
    monkeypatch.setitem(sys.modules, "pycurl", None)


@pytest.fixture
def engines(monkeypatch) -> list[CurlEngine]:
    """Every libcurl engine made from now on."""
    made: list[CurlEngine] = []
    init = CurlEngine.__init__

    def spy(engine, *args, **kwargs):
        init(engine, *args, **kwargs)
        made.append(engine)

    monkeypatch.setattr(CurlEngine, "__init__", spy)
    return made


@pytest.mark.parametrize("forced", ["curl", "minio", "CURL"])
def test_the_variable_forces_a_transport(archive, tmp_path, monkeypatch, fresh_choice, engines, forced):
    archive.publish("ds", "1", FILES)
    monkeypatch.setenv("DJARCHIVE_TRANSPORT", forced)
    gets = spy_gets(monkeypatch)
    summary = client().download("ds", "1", tmp_path / "t", create_target=True)
    assert summary.ok
    assert read_tree(tmp_path / "t") == FILES
    assert sorted(key for key, _, _ in gets) == sorted(f"ds/1/{name}" for name in FILES)
    assert bool(engines) == (forced.lower() == "curl")


def test_libcurl_is_the_default_where_pycurl_imports(archive, tmp_path, monkeypatch, fresh_choice, engines):
    archive.publish("ds", "1", FILES)
    monkeypatch.delenv("DJARCHIVE_TRANSPORT", raising=False)
    assert client().download("ds", "1", tmp_path / "t", create_target=True).ok
    assert len(engines) == 1
    assert read_tree(tmp_path / "t") == FILES


def test_without_pycurl_minio_carries_the_data_and_one_debug_line_says_so(
    archive, tmp_path, monkeypatch, no_pycurl, caplog
):
    archive.publish("ds", "1", FILES)
    monkeypatch.delenv("DJARCHIVE_TRANSPORT", raising=False)
    with caplog.at_level(logging.DEBUG, logger="djarchive_common"):
        assert client().download("ds", "1", tmp_path / "t", create_target=True).ok
        assert client().download("ds", "1", tmp_path / "u", create_target=True).ok
    assert read_tree(tmp_path / "t") == read_tree(tmp_path / "u") == FILES
    said = [record for record in caplog.records if "pycurl cannot be imported" in record.getMessage()]
    assert len(said) == 1
    assert said[0].levelno == logging.DEBUG
    assert said[0].getMessage().endswith("object bodies go through minio")


def test_a_forced_curl_without_pycurl_is_one_clear_configuration_error(
    archive, tmp_path, monkeypatch, no_pycurl, capsys
):
    archive.publish("ds", "1", FILES)
    monkeypatch.setenv("DJARCHIVE_TRANSPORT", "curl")
    with pytest.raises(ConfigurationError, match="DJARCHIVE_TRANSPORT=curl, but pycurl cannot be imported"):
        client().download("ds", "1", tmp_path / "t", create_target=True)
    assert main(["download", "ds", "1", str(tmp_path / "u")]) == 2
    [line] = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("djarchive: error: DJARCHIVE_TRANSPORT=curl, but pycurl cannot be imported")


def test_an_unknown_transport_is_refused_before_anything_is_tried(archive, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DJARCHIVE_TRANSPORT", "urllib")
    assert main(["download", "ds", "1", str(tmp_path / "t")]) == 2
    err = capsys.readouterr().err
    assert "invalid DJARCHIVE_TRANSPORT='urllib': use curl or minio" in err
    assert not (tmp_path / "t").exists()


def test_a_run_with_nothing_to_move_never_imports_pycurl(archive, tmp_path):
    """A no-op re-run decides there is nothing to fetch before anything imports pycurl."""
    archive.publish("ds", "1", FILES)
    target = tmp_path / "t"
    assert client().download("ds", "1", target, create_target=True).ok
    script = (
        "import sys\n"
        "from djarchive_client import client\n"
        f"summary = client().download('ds', '1', {str(target)!r})\n"
        "print(summary.fetched_files, 'pycurl' in sys.modules)\n"
    )
    env = {**os.environ, **archive.client_env}
    result = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True
    )
    assert result.stdout.split() == ["0", "False"]
