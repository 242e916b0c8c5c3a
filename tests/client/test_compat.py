"""The archive's existing callers, as they are written.

DataJoint's workflow and element repositories (array-ephys, calcium-imaging, miniscope,
deeplabcut, optogenetics, ...) download their test and example data with the original
client. Their call shapes are reproduced here as they appear in those repositories, against a
local archive, under whichever datajoint major is installed (tox runs both):

* ``djarchive_client.client().download(name, revision, str(root), create_target=False)``
  into a folder that exists (their test fixtures);
* ``os.makedirs(target_directory)`` then ``client.download(name,
  target_directory=target_directory, revision=revision)`` (their notebooks and helpers);
* configuration through ``custom`` keys in ``dj_local_conf.json``, role-specific
  (``djarchive.client.*``) or role-less (``djarchive.*``), or through the environment their CI
  exports (``DJARCHIVE_CLIENT_ENDPOINT``, ``_BUCKET``, ``_ACCESSKEY``, ``_SECRETKEY``);
* ``nfound, nerr = c.download(...)``, the original's return value.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib import metadata

import pytest

import djarchive_client
from djarchive_common.errors import PartialFailureError
from tests.conftest import CLIENT_ACCESS_KEY, CLIENT_SECRET_KEY
from tests.helpers import read_tree

DJ_MAJOR = int(metadata.version("datajoint").split(".")[0])

EPHYS = ("workflow-array-ephys-benchmark", "v2")
MINISCOPE = ("workflow-miniscope-test-set", "v1")
DLC = ("workflow-dlc-data", "0_2_1")  # revision = version.__version__.replace(".", "_")


@pytest.fixture
def callers_archive(archive, seed_files):
    """The local archive holding the callers' datasets (the seed files in each)."""
    for dataset, revision in (EPHYS, MINISCOPE, DLC, ("workflow-dlc-data", "v1")):
        archive.publish(dataset, revision, seed_files)
    return archive


def test_positional_with_create_target_false_into_an_existing_folder(callers_archive, seed_files, tmp_path):
    test_data_dir = tmp_path / "inbox"
    os.makedirs(test_data_dir)

    client = djarchive_client.client()
    client.download("workflow-array-ephys-benchmark", "v2", str(test_data_dir), create_target=False)

    assert read_tree(test_data_dir) == seed_files


def test_create_target_false_still_needs_the_folder(callers_archive, tmp_path):
    with pytest.raises(FileNotFoundError):  # as the original: the caller creates it
        djarchive_client.client().download(
            "workflow-miniscope-test-set", "v1", str(tmp_path / "missing"), create_target=False
        )


def test_keywords_after_makedirs(callers_archive, seed_files, tmp_path):
    target_directory = str(tmp_path / "workflow_dlc_data") + "/"  # their default ends in '/'
    client = djarchive_client.client()
    revision = "0.2.1".replace(".", "_")
    os.makedirs(target_directory)

    client.download("workflow-dlc-data", target_directory=target_directory, revision=revision)

    assert read_tree(tmp_path / "workflow_dlc_data") == seed_files


def test_notebook_shape_list_then_download(callers_archive, seed_files, tmp_path):
    client = djarchive_client.client()
    assert "workflow-dlc-data" in list(client.datasets())
    assert ("workflow-miniscope-test-set", "v1") in list(client.revisions())
    os.makedirs(tmp_path / "example_data", exist_ok=True)

    client.download(
        "workflow-miniscope-test-set", target_directory=str(tmp_path / "example_data"), revision="v1"
    )

    assert read_tree(tmp_path / "example_data") == seed_files


def test_unpacks_as_found_and_errors(callers_archive, seed_files, tmp_path):
    c = djarchive_client.client()
    os.makedirs(tmp_path / "t")

    nfound, nerr = c.download(
        "workflow-array-ephys-benchmark", "v2", str(tmp_path / "t"), create_target=False
    )
    assert (nfound, nerr) == (len(seed_files), 0)

    nfound, nerr = c.download("workflow-array-ephys-benchmark", "v2", str(tmp_path / "t"))  # all in place
    assert (nfound, nerr) == (len(seed_files), 0)

    summary = c.download("workflow-array-ephys-benchmark", "v2", str(tmp_path / "t"))
    assert tuple(summary) == (summary.found, summary.errors) == (len(seed_files), 0)
    assert summary.fetched_files == 0  # the dataclass is still there for those who want more


def test_a_failed_download_raises_with_a_summary_that_unpacks(
    callers_archive, seed_files, tmp_path, monkeypatch
):
    from djarchive_common import transfer

    monkeypatch.setattr(transfer.time, "sleep", lambda seconds: None)
    callers_archive.put("workflow-dlc-data/v1/root.dat", b"Z" * len(seed_files["root.dat"]))  # corrupted
    os.makedirs(tmp_path / "t")

    with pytest.raises(PartialFailureError) as caught:
        djarchive_client.client().download("workflow-dlc-data", "v1", str(tmp_path / "t"))

    nfound, nerr = caught.value.summary
    assert (nfound, nerr) == (len(seed_files) - 1, 1)


def test_accesskey_and_secretkey_variables_of_their_ci(callers_archive, seed_files, tmp_path, monkeypatch):
    monkeypatch.setenv("DJARCHIVE_CLIENT_ACCESSKEY", CLIENT_ACCESS_KEY)
    monkeypatch.setenv("DJARCHIVE_CLIENT_SECRETKEY", CLIENT_SECRET_KEY)

    client = djarchive_client.client()
    assert (client.settings.access_key, client.settings.secret_key) == (CLIENT_ACCESS_KEY, CLIENT_SECRET_KEY)
    os.makedirs(tmp_path / "t")
    nfound, nerr = client.download(
        "workflow-array-ephys-benchmark", "v2", str(tmp_path / "t"), create_target=False
    )

    assert (nfound, nerr) == (len(seed_files), 0)
    assert read_tree(tmp_path / "t") == seed_files


# -- configured through dj_local_conf.json, as the seed README says ------------------------------
# In a fresh interpreter with no DJARCHIVE_* variables: datajoint 0.x reads the file when it is
# imported, and under 2.x djarchive reads it itself.

CALLER = """
import json, os, sys
import djarchive_client

client = djarchive_client.client()
target = sys.argv[1]
os.makedirs(target)
nfound, nerr = client.download('workflow-array-ephys-benchmark', 'v2', target, create_target=False)
print(json.dumps([client.endpoint, client.bucket, list(client.datasets()), nfound, nerr]))
"""


def run_caller(cwd, target, code=CALLER):
    env = {name: value for name, value in os.environ.items() if not name.startswith(("DJARCHIVE_", "DJ_"))}
    result = subprocess.run(
        [sys.executable, "-c", code, str(target)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""  # no warning, no log line
    return json.loads(result.stdout)


@pytest.mark.parametrize("keys", ["role-specific", "role-less"])
def test_custom_keys_in_dj_local_conf(callers_archive, seed_files, isolated_config, tmp_path, keys):
    prefix = "djarchive.client." if keys == "role-specific" else "djarchive."
    custom = {
        f"{prefix}endpoint": callers_archive.server.url,  # http://127.0.0.1:PORT
        f"{prefix}bucket": callers_archive.bucket,
        f"{prefix}access_key": CLIENT_ACCESS_KEY,
        f"{prefix}secret_key": CLIENT_SECRET_KEY,
    }
    (isolated_config / "dj_local_conf.json").write_text(
        json.dumps({"database.host": "db.example.org", "custom": custom})
    )

    endpoint, bucket, datasets, nfound, nerr = run_caller(isolated_config, tmp_path / "data")

    assert (endpoint, bucket) == (callers_archive.server.endpoint, callers_archive.bucket)
    assert "workflow-array-ephys-benchmark" in datasets
    assert (nfound, nerr) == (len(seed_files), 0)
    assert read_tree(tmp_path / "data") == seed_files


def test_custom_keys_in_the_home_config(callers_archive, seed_files, isolated_config, tmp_path):
    custom = {
        "djarchive.client.endpoint": callers_archive.server.url,
        "djarchive.client.bucket": callers_archive.bucket,
    }
    (tmp_path / "home" / ".datajoint_config.json").write_text(json.dumps({"custom": custom}))

    _, bucket, _, nfound, _ = run_caller(isolated_config, tmp_path / "data")

    assert (bucket, nfound) == (callers_archive.bucket, len(seed_files))


@pytest.mark.skipif(DJ_MAJOR != 0, reason="dj.config['custom'] exists in datajoint 0.x only")
def test_dj014_custom_keys_set_at_run_time_from_their_ci_variables(
    callers_archive, seed_files, isolated_config, tmp_path
):
    # Their test fixtures copy the CI's variables into dj.config['custom'] before creating the
    # client; their dj_local_conf.json has a custom section already (their data folders).
    (isolated_config / "dj_local_conf.json").write_text(
        json.dumps({"custom": {"ephys_root_data_dir": str(tmp_path / "data")}})
    )
    code = (
        "import datajoint as dj, os\n"
        "dj.config['custom'].update({\n"
        f"    'djarchive.client.endpoint': {callers_archive.server.url!r},\n"
        f"    'djarchive.client.bucket': {callers_archive.bucket!r},\n"
        f"    'djarchive.client.access_key': {CLIENT_ACCESS_KEY!r},\n"
        f"    'djarchive.client.secret_key': {CLIENT_SECRET_KEY!r},\n"
        "})\n" + CALLER
    )
    _, bucket, _, nfound, nerr = run_caller(isolated_config, tmp_path / "data", code)

    assert (bucket, nfound, nerr) == (callers_archive.bucket, len(seed_files), 0)


def test_the_command_line_reads_dj_local_conf_too(callers_archive, isolated_config, tmp_path):
    custom = {
        "djarchive.client.endpoint": callers_archive.server.url,
        "djarchive.client.bucket": callers_archive.bucket,
    }
    (isolated_config / "dj_local_conf.json").write_text(json.dumps({"custom": custom}))
    env = {name: value for name, value in os.environ.items() if not name.startswith(("DJARCHIVE_", "DJ_"))}

    result = subprocess.run(
        [sys.executable, "-m", "djarchive_client.cli", "revisions", "workflow-dlc-data"],
        cwd=isolated_config,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout == "workflow-dlc-data,0_2_1\nworkflow-dlc-data,v1\n"
