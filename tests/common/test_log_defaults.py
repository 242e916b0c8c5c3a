"""djarchive's log level: WARNING unless the user chose otherwise (DJARCHIVE_LOGLEVEL, --debug,
custom['djarchive.loglevel'], or a DataJoint loglevel set on purpose). DataJoint's own default
(INFO) must not leak in when a DataJoint configuration is present, under either major."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib import metadata

import pytest

from djarchive_common.logs import resolve_log_options

DJ_MAJOR = int(metadata.version("datajoint").split(".")[0])

# Connection refused: the listing is retried, and each retry is logged at INFO.
RUN = (
    "import sys; from djarchive_client.cli import main; "
    "code = main(['datasets', '--endpoint', 'http://127.0.0.1:9']); "
    "print('datajoint' in sys.modules); sys.exit(code)"
)
ERROR = (
    "djarchive: error: cannot reach 127.0.0.1:9 "
    "(Failed to establish a new connection: [Errno 111] Connection refused)"
)


def run_cli(cwd, env=None):
    """``djarchive datasets`` against a closed port, in a fresh interpreter: (stderr lines,
    whether datajoint was imported)."""
    result = subprocess.run(
        [sys.executable, "-c", RUN],
        cwd=cwd,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1, result.stderr
    return result.stderr.splitlines(), result.stdout.strip() == "True"


def datajoint_configuration(folder, **settings):
    """A DataJoint configuration in ``folder`` for both majors: dj_local_conf.json (0.x) and
    datajoint.json (2.x), each with a database host and ``settings``."""
    (folder / "dj_local_conf.json").write_text(json.dumps({"database.host": "db.example.org", **settings}))
    (folder / "datajoint.json").write_text(json.dumps({"database": {"host": "db.example.org"}, **settings}))


def test_without_any_configuration_the_level_is_left_to_the_default():
    assert resolve_log_options() == (None, None)


def test_datajoint_default_loglevel_does_not_leak(isolated_config):
    datajoint_configuration(isolated_config)

    lines, imported = run_cli(isolated_config)

    assert imported  # DataJoint's configuration was read ...
    assert lines == [ERROR]  # ... and its default INFO level did not apply: no "retrying" lines


@pytest.mark.parametrize(
    "how",
    ["the major's own configuration file", "DJ_LOG_LEVEL", "custom['djarchive.loglevel']"],
)
def test_a_level_chosen_on_purpose_is_honoured(isolated_config, how):
    env = {}
    if how == "DJ_LOG_LEVEL":
        datajoint_configuration(isolated_config)
        env["DJ_LOG_LEVEL"] = "INFO"
    elif how == "custom['djarchive.loglevel']":
        (isolated_config / "dj_local_conf.json").write_text(
            json.dumps({"custom": {"djarchive.loglevel": "INFO"}})
        )
    else:
        datajoint_configuration(isolated_config, loglevel="INFO")

    lines, _ = run_cli(isolated_config, env)

    assert lines[-1] == ERROR
    assert any(line.startswith("djarchive: info: listing the bucket failed") for line in lines), lines


@pytest.mark.skipif(DJ_MAJOR < 2, reason="datajoint 2.x configuration (tox factor dj2)")
def test_dj2_does_not_take_the_loglevel_of_a_file_it_does_not_read(isolated_config):
    # datajoint 0.x's save_local() writes every key, the default "loglevel": "INFO" included;
    # datajoint 2.x reads datajoint.json, not that file, and neither does djarchive for DataJoint's level.
    (isolated_config / "dj_local_conf.json").write_text(json.dumps({"loglevel": "INFO", "custom": {}}))
    (isolated_config / "datajoint.json").write_text(json.dumps({"database": {"host": "db.example.org"}}))

    lines, imported = run_cli(isolated_config)

    assert imported
    assert lines == [ERROR]


def test_djarchive_loglevel_beats_datajoint(isolated_config):
    datajoint_configuration(isolated_config, loglevel="DEBUG")

    lines, _ = run_cli(isolated_config, {"DJARCHIVE_LOGLEVEL": "ERROR"})

    assert lines == [ERROR]
