"""Configuration: every source, their precedence, both datajoint majors, and secrets kept out of sight."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib import metadata

import pytest

from djarchive_common.config import DEFAULT_BUCKET, DEFAULT_ENDPOINT, Settings, resolve_settings
from djarchive_common.errors import ConfigurationError, MissingCredentialsError
from tests.helpers import never_waits

DJ_MAJOR = int(metadata.version("datajoint").split(".")[0])
only_dj014 = pytest.mark.skipif(DJ_MAJOR != 0, reason="datajoint 0.13/0.14 configuration (tox factor dj014)")
only_dj2 = pytest.mark.skipif(DJ_MAJOR < 2, reason="datajoint 2.x configuration (tox factor dj2)")

PROBE = (
    "import sys, json; from djarchive_client import client; c = client(); "
    "print(json.dumps([c.endpoint, c.bucket, c.settings.secure, c.settings.anonymous, "
    "c.settings.access_key, c.settings.secret_key, 'datajoint' in sys.modules]))"
)


def probe(cwd, env=None, code=PROBE):
    """Resolve the client's settings in a fresh interpreter (datajoint reads its files at import)."""
    import os

    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=cwd,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout), result.stderr


def test_client_defaults_are_the_public_archive():
    settings = resolve_settings("client")
    assert (settings.endpoint, settings.bucket, settings.secure) == (DEFAULT_ENDPOINT, DEFAULT_BUCKET, True)
    assert settings.anonymous
    assert settings.sources["endpoint"] == "default"


def test_defaults_do_not_import_datajoint(isolated_config):
    values, stderr = probe(isolated_config)
    assert values == ["s3.djhub.io", "djhub.vathes.datapub.elements", True, True, None, None, False]
    assert stderr == ""


def test_admin_has_no_default_credentials():
    settings = resolve_settings("admin")
    assert settings.anonymous
    with pytest.raises(MissingCredentialsError, match="DJARCHIVE_ADMIN_ACCESS_KEY"):
        settings.require_credentials()


def test_environment(monkeypatch):
    monkeypatch.setenv("DJARCHIVE_CLIENT_ENDPOINT", "minio.lab.org:9000")
    monkeypatch.setenv("DJARCHIVE_CLIENT_BUCKET", "lab-bucket")
    monkeypatch.setenv("DJARCHIVE_CLIENT_ACCESS_KEY", "AKIDEXAMPLE")
    monkeypatch.setenv("DJARCHIVE_CLIENT_SECRET_KEY", "wJalrXUtnFEMI")
    monkeypatch.setenv("DJARCHIVE_CLIENT_SECURE", "false")
    settings = resolve_settings("client")
    assert (settings.endpoint, settings.bucket, settings.secure) == (
        "minio.lab.org:9000",
        "lab-bucket",
        False,
    )
    assert (settings.access_key, settings.secret_key) == ("AKIDEXAMPLE", "wJalrXUtnFEMI")
    assert settings.sources["bucket"] == "DJARCHIVE_CLIENT_BUCKET"
    # The admin role reads only its own variables.
    assert resolve_settings("admin").bucket == DEFAULT_BUCKET


def test_environment_aliases_used_by_workflow_test_suites(monkeypatch):
    monkeypatch.setenv("DJARCHIVE_CLIENT_ACCESSKEY", "alias-access")
    monkeypatch.setenv("DJARCHIVE_CLIENT_SECRETKEY", "alias-secret")
    settings = resolve_settings("client")
    assert (settings.access_key, settings.secret_key) == ("alias-access", "alias-secret")


def test_arguments_beat_environment(monkeypatch):
    monkeypatch.setenv("DJARCHIVE_CLIENT_ENDPOINT", "env.example.org")
    monkeypatch.setenv("DJARCHIVE_CLIENT_BUCKET", "env-bucket")
    monkeypatch.setenv("DJARCHIVE_CLIENT_SECURE", "0")
    settings = resolve_settings("client", endpoint="arg.example.org:9000", secure=True)
    assert (settings.endpoint, settings.bucket, settings.secure) == (
        "arg.example.org:9000",
        "env-bucket",
        True,
    )


@pytest.mark.parametrize(
    ("endpoint", "expected", "secure"),
    [
        ("http://127.0.0.1:9000", "127.0.0.1:9000", False),
        ("https://s3.example.org", "s3.example.org", True),
        ("https://s3.example.org/", "s3.example.org", True),
        ("s3.example.org:443", "s3.example.org:443", True),
        ("[::1]:9000", "[::1]:9000", True),
    ],
)
def test_endpoint_forms(endpoint, expected, secure):
    settings = resolve_settings("client", endpoint=endpoint)
    assert (settings.endpoint, settings.secure) == (expected, secure)


def test_explicit_secure_flag_beats_the_url_scheme(monkeypatch):
    monkeypatch.setenv("DJARCHIVE_CLIENT_ENDPOINT", "https://s3.example.org")
    assert resolve_settings("client", secure=False).secure is False
    assert resolve_settings("client").secure is True


@pytest.mark.parametrize(
    ("endpoint", "message"),
    [
        ("ftp://host", "expected host"),
        ("http://host/path", "expected host"),
        ("https://user:pw@host", "credentials do not belong in the URL"),
        ("host:port", "expected host"),
        ("a b", "expected host"),
    ],
)
def test_bad_endpoints(endpoint, message):
    with pytest.raises(ConfigurationError, match=message):
        resolve_settings("client", endpoint=endpoint)


def test_bad_boolean_names_the_variable(monkeypatch):
    monkeypatch.setenv("DJARCHIVE_ADMIN_SECURE", "perhaps")
    with pytest.raises(ConfigurationError, match="DJARCHIVE_ADMIN_SECURE"):
        resolve_settings("admin")


def test_half_credentials_are_an_error(monkeypatch):
    monkeypatch.setenv("DJARCHIVE_ADMIN_ACCESS_KEY", "only-access")
    with pytest.raises(
        ConfigurationError, match=r"access key is configured \(DJARCHIVE_ADMIN_ACCESS_KEY\) but the secret"
    ):
        resolve_settings("admin")


def test_unknown_role():
    with pytest.raises(ConfigurationError, match="unknown role"):
        resolve_settings("superuser")


def test_secrets_never_in_repr_or_str(monkeypatch):
    from djarchive_client import client

    monkeypatch.setenv("DJARCHIVE_CLIENT_ACCESS_KEY", "AKIA-VISIBLE-NOWHERE")
    monkeypatch.setenv("DJARCHIVE_CLIENT_SECRET_KEY", "super-secret-value-123")
    settings = resolve_settings("client")
    c = client()
    for text in (repr(settings), str(settings), repr(c), str(c), repr(c.store), str(settings.sources)):
        assert "super-secret-value-123" not in text
        assert "AKIA-VISIBLE-NOWHERE" not in text
    assert "redacted" in repr(settings)


def test_settings_is_immutable():
    settings = resolve_settings("client")
    with pytest.raises(AttributeError):
        settings.bucket = "other"  # type: ignore[misc]
    assert isinstance(settings, Settings)


def test_creating_a_client_never_touches_the_network():
    from djarchive_client import client

    c = client(endpoint="127.0.0.1:1", bucket="nowhere", secure=False)
    assert (c.endpoint, c.bucket) == ("127.0.0.1:1", "nowhere")
    assert "minio" not in c.store.__dict__  # the minio client is created on first use


# -- datajoint 0.13/0.14: dj.config['custom'] -------------------------------------------


@only_dj014
def test_dj014_local_conf_file(isolated_config):
    (isolated_config / "dj_local_conf.json").write_text(
        json.dumps(
            {
                "custom": {
                    "djarchive.client.endpoint": "dj.example.org:9000",
                    "djarchive.client.bucket": "dj-bucket",
                    "djarchive.client.access_key": "dj-access",
                    "djarchive.client.secret_key": "dj-secret",
                }
            }
        )
    )
    values, stderr = probe(isolated_config)
    assert values == ["dj.example.org:9000", "dj-bucket", True, False, "dj-access", "dj-secret", True]
    assert "DataJoint" not in stderr  # datajoint's import-time INFO lines are not ours to print


@only_dj014
def test_dj014_environment_beats_local_conf(isolated_config):
    (isolated_config / "dj_local_conf.json").write_text(
        json.dumps(
            {
                "custom": {
                    "djarchive.client.endpoint": "dj.example.org",
                    "djarchive.client.bucket": "dj-bucket",
                }
            }
        )
    )
    values, _ = probe(isolated_config, {"DJARCHIVE_CLIENT_BUCKET": "env-bucket"})
    assert values[:2] == ["dj.example.org", "env-bucket"]


@only_dj014
def test_dj014_global_config_in_home(isolated_config, tmp_path):
    (tmp_path / "home" / ".datajoint_config.json").write_text(
        json.dumps({"custom": {"djarchive.client.bucket": "home-bucket"}})
    )
    values, _ = probe(isolated_config)
    assert values[1] == "home-bucket"


@pytest.fixture
def dj_config():
    """datajoint's live config (imported quietly), restored after the test."""
    from djarchive_common.config.sources import _import_datajoint

    datajoint = _import_datajoint()
    assert datajoint is not None
    config = datajoint.config
    saved_custom = config.get("custom")
    saved_stores = json.loads(json.dumps(config.get("stores") or {}))
    yield config
    if DJ_MAJOR == 0:
        config["custom"] = saved_custom if saved_custom is not None else {}
        config["stores"] = saved_stores
    else:
        config.stores.clear()
        config.stores.update(saved_stores)


@only_dj014
def test_dj014_role_specific_keys_then_roleless_fallback(dj_config):
    dj_config["custom"] = {
        "djarchive.admin.endpoint": "admin.example.org",
        "djarchive.endpoint": "roleless.example.org",
        "djarchive.bucket": "roleless-bucket",
        "djarchive.access_key": "roleless-access",
        "djarchive.secret_key": "roleless-secret",
    }
    admin = resolve_settings("admin")
    client = resolve_settings("client")
    assert (admin.endpoint, admin.bucket) == ("admin.example.org", "roleless-bucket")
    assert (client.endpoint, client.bucket) == ("roleless.example.org", "roleless-bucket")
    assert admin.access_key == "roleless-access"
    assert admin.sources["endpoint"] == "datajoint config custom['djarchive.admin.endpoint']"


@only_dj014
def test_dj014_precedence_arguments_environment_datajoint_default(dj_config, monkeypatch):
    dj_config["custom"] = {
        "djarchive.client.endpoint": "dj.example.org",
        "djarchive.client.bucket": "dj-bucket",
    }
    monkeypatch.setenv("DJARCHIVE_CLIENT_ENDPOINT", "env.example.org")
    settings = resolve_settings("client", bucket="arg-bucket")
    assert (settings.endpoint, settings.bucket) == ("env.example.org", "arg-bucket")
    monkeypatch.delenv("DJARCHIVE_CLIENT_ENDPOINT")
    assert resolve_settings("client").endpoint == "dj.example.org"


# -- datajoint 2.x: named stores in datajoint.json ----------------------------------------


@only_dj2
def test_dj2_datajoint_json_and_secrets_files(isolated_config):
    (isolated_config / "datajoint.json").write_text(
        json.dumps(
            {
                "stores": {
                    "djarchive_client": {
                        "protocol": "s3",
                        "endpoint": "dj2.example.org:9000",
                        "bucket": "dj2-bucket",
                        "secure": False,
                    }
                }
            }
        )
    )
    secrets = isolated_config / ".secrets"
    secrets.mkdir()
    (secrets / "stores.djarchive_client.access_key").write_text("file-access\n")
    (secrets / "stores.djarchive_client.secret_key").write_text("file-secret\n")
    values, stderr = probe(isolated_config)
    assert values == ["dj2.example.org:9000", "dj2-bucket", False, False, "file-access", "file-secret", True]
    assert "Warning" not in stderr


@only_dj2
def test_dj2_datajoint_json_found_from_a_subfolder(isolated_config):
    (isolated_config / "datajoint.json").write_text(
        json.dumps({"stores": {"djarchive_client": {"bucket": "up-bucket"}}})
    )
    sub = isolated_config / "analysis" / "notebooks"
    sub.mkdir(parents=True)
    values, _ = probe(sub)
    assert values[1] == "up-bucket"


@only_dj2
def test_dj2_environment_beats_datajoint_json(isolated_config):
    (isolated_config / "datajoint.json").write_text(
        json.dumps({"stores": {"djarchive_admin": {"endpoint": "dj2.example.org", "bucket": "dj2-bucket"}}})
    )
    code = (
        "import json; from djarchive_common.config import resolve_settings as r; s = r('admin'); "
        "print(json.dumps([s.endpoint, s.bucket, s.secure]))"
    )
    values, _ = probe(isolated_config, {"DJARCHIVE_ADMIN_ENDPOINT": "http://env.example.org:9000"}, code)
    assert values == ["env.example.org:9000", "dj2-bucket", False]


@only_dj2
def test_dj2_stores_from_dj_stores_variable(isolated_config):
    stores = {
        "djarchive_client": {"protocol": "s3", "endpoint": "envstore.example.org", "bucket": "envstore"}
    }
    values, _ = probe(isolated_config, {"DJ_STORES": json.dumps(stores)})
    assert values[:2] == ["envstore.example.org", "envstore"]


@only_dj2
def test_dj2_live_config_stores(dj_config):
    dj_config.stores["djarchive_admin"] = {
        "protocol": "s3",
        "endpoint": "live.example.org",
        "bucket": "live-bucket",
        "access_key": "live-access",
        "secret_key": "live-secret",
        "secure": "false",
    }
    settings = resolve_settings("admin")
    assert (settings.endpoint, settings.bucket, settings.secure) == ("live.example.org", "live-bucket", False)
    assert not settings.anonymous
    assert resolve_settings("client").endpoint == DEFAULT_ENDPOINT


def test_no_datajoint_warning_reaches_the_cli(isolated_config):
    # A DJ_* variable makes djarchive consult DataJoint; its import-time warnings must stay silent.
    result = subprocess.run(
        [sys.executable, "-m", "djarchive_client.cli", "datasets", "--endpoint", "127.0.0.1:1", "--insecure"],
        cwd=isolated_config,
        env={**__import__("os").environ, "DJ_LOG_LEVEL": "WARNING"},
        capture_output=True,
        text=True,
    )
    assert result.returncode == 1
    assert result.stdout == ""
    assert "Warning" not in result.stderr
    assert "DataJoint" not in result.stderr
    assert result.stderr.splitlines() == [
        "djarchive: error: cannot reach 127.0.0.1:1 "
        "(Failed to establish a new connection: [Errno 111] Connection refused)"
    ]


# -- the seed's custom keys in dj_local_conf.json, under either datajoint major ------------------
# datajoint 0.x reads the file itself; under datajoint 2.x, which does not, djarchive reads it
# (without importing datajoint). Either way the caller gets the archive the file configures.

ROLES_PROBE = (
    "import sys, json; from djarchive_common.config import resolve_settings as r; "
    "print(json.dumps([[s.endpoint, s.bucket, s.secure, s.access_key, s.secret_key, s.sources['bucket']] "
    "for s in (r('client'), r('admin'))] + ['datajoint' in sys.modules]))"
)


def test_local_conf_role_specific_custom_keys(isolated_config):
    (isolated_config / "dj_local_conf.json").write_text(
        json.dumps(
            {
                "database.host": "db.example.org",
                "custom": {
                    "djarchive.client.endpoint": "dj.example.org:9000",
                    "djarchive.client.bucket": "dj-bucket",
                    "djarchive.client.access_key": "dj-access",
                    "djarchive.client.secret_key": "dj-secret",
                },
            }
        )
    )
    values, stderr = probe(isolated_config)
    # datajoint 2.x is not even imported: the file is plain JSON to djarchive
    expected = ["dj.example.org:9000", "dj-bucket", True, False, "dj-access", "dj-secret", DJ_MAJOR == 0]
    assert values == expected
    assert stderr == ""


def test_local_conf_roleless_keys_configure_both_roles(isolated_config):
    (isolated_config / "dj_local_conf.json").write_text(
        json.dumps(
            {
                "custom": {
                    "djarchive.endpoint": "roleless.example.org",
                    "djarchive.bucket": "roleless-bucket",
                    "djarchive.access_key": "roleless-access",
                    "djarchive.secret_key": "roleless-secret",
                    "djarchive.admin.bucket": "admin-bucket",
                }
            }
        )
    )
    values, _ = probe(isolated_config, code=ROLES_PROBE)
    client, admin, _ = values
    source = "datajoint config" if DJ_MAJOR == 0 else "dj_local_conf.json"
    assert client == [
        "roleless.example.org",
        "roleless-bucket",
        True,
        "roleless-access",
        "roleless-secret",
        f"{source} custom['djarchive.bucket']",
    ]
    assert admin == [
        "roleless.example.org",
        "admin-bucket",
        True,
        "roleless-access",
        "roleless-secret",
        f"{source} custom['djarchive.admin.bucket']",
    ]


def test_global_config_in_home_and_the_local_file_first(isolated_config, tmp_path):
    home_config = tmp_path / "home" / ".datajoint_config.json"
    home_config.write_text(json.dumps({"custom": {"djarchive.client.bucket": "home-bucket"}}))
    values, _ = probe(isolated_config)
    assert values[1] == "home-bucket"
    # As datajoint 0.x does, only the first file found is read: the local one hides the global one.
    (isolated_config / "dj_local_conf.json").write_text(
        json.dumps({"custom": {"djarchive.client.endpoint": "local.example.org"}})
    )
    values, _ = probe(isolated_config)
    assert values[:2] == ["local.example.org", DEFAULT_BUCKET]


def test_environment_beats_local_conf_custom_keys(isolated_config):
    (isolated_config / "dj_local_conf.json").write_text(
        json.dumps({"custom": {"djarchive.client.endpoint": "dj.example.org", "djarchive.bucket": "dj-b"}})
    )
    values, _ = probe(isolated_config, {"DJARCHIVE_CLIENT_BUCKET": "env-bucket"})
    assert values[:2] == ["dj.example.org", "env-bucket"]


@only_dj2
def test_dj2_stores_beat_local_conf_custom_keys(isolated_config):
    (isolated_config / "datajoint.json").write_text(
        json.dumps({"stores": {"djarchive_client": {"protocol": "s3", "bucket": "store-bucket"}}})
    )
    (isolated_config / "dj_local_conf.json").write_text(
        json.dumps(
            {
                "custom": {
                    "djarchive.client.endpoint": "custom.example.org",
                    "djarchive.client.bucket": "c-bucket",
                }
            }
        )
    )
    values, _ = probe(isolated_config)
    assert values[:2] == ["custom.example.org", "store-bucket"]


def test_a_broken_local_conf_is_a_configuration_error(isolated_config):
    (isolated_config / "dj_local_conf.json").write_text('{"custom": {"djarchive.client.bucket": ')
    result = subprocess.run(
        [sys.executable, "-m", "djarchive_client.cli", "datasets"],
        cwd=isolated_config,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2
    [line] = result.stderr.splitlines()
    assert line.startswith("djarchive: error: ")
    if DJ_MAJOR != 0:  # datajoint 0.x fails to import; its message does not name the file
        assert "dj_local_conf.json is not valid JSON" in line


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes (nor SIGALRM) on this platform")
def test_datajoint_files_that_are_no_regular_files_are_refused_without_waiting(isolated_config):
    os.mkfifo(isolated_config / "dj_local_conf.json")  # opening it to read would wait for a writer
    with never_waits("reading dj_local_conf.json"), pytest.raises(ConfigurationError) as caught:
        resolve_settings(environ={})
    assert str(caught.value) == "cannot read dj_local_conf.json: not a regular file"
    os.unlink(isolated_config / "dj_local_conf.json")
    folder = isolated_config.parent / "home" / ".datajoint_config.json"
    folder.mkdir()
    with never_waits("reading ~/.datajoint_config.json"), pytest.raises(ConfigurationError) as caught:
        resolve_settings(environ={})
    assert str(caught.value) == f"cannot read {folder}: not a regular file"
    assert (
        resolve_settings(endpoint="e", bucket="b-bucket", access_key="a", secret_key="s").bucket == "b-bucket"
    )


def test_admin_filename_filter_from_local_conf(isolated_config):
    pytest.importorskip("djarchive_admin")
    (isolated_config / "dj_local_conf.json").write_text(
        json.dumps({"custom": {"djarchive.admin.filename_filter": "^tmp"}})
    )
    code = "from djarchive_admin import admin; print(repr(admin().filename_filter))"
    result = subprocess.run([sys.executable, "-c", code], cwd=isolated_config, capture_output=True, text=True)
    assert result.stdout.strip() == "'^tmp'", result.stderr


def test_single_writer_from_argument_environment_and_datajoint(isolated_config):
    from djarchive_common.config import resolve_single_writer

    assert resolve_single_writer(environ={}) == (False, "default")
    assert resolve_single_writer("admin", True, environ={}) == (True, "single_writer=")
    flags = {"single_writer": "--single-writer"}
    assert resolve_single_writer("admin", True, environ={}, argument_names=flags) == (True, "--single-writer")
    variable = "DJARCHIVE_ADMIN_SINGLE_WRITER"
    assert resolve_single_writer(environ={variable: "1"}) == (True, variable)
    assert resolve_single_writer("admin", True, environ={variable: "0"})[0] is True  # the argument wins
    assert resolve_single_writer(environ={variable: "off"}) == (False, variable)
    with pytest.raises(ConfigurationError, match=f"invalid boolean 'maybe' in {variable}"):
        resolve_single_writer(environ={variable: "maybe"})
    (isolated_config / "dj_local_conf.json").write_text(
        json.dumps({"custom": {"djarchive.admin.single_writer": "yes"}})
    )
    code = (
        "from djarchive_common.config import resolve_single_writer as r; "
        f"print(r()[0], r(environ={{'{variable}': '0'}})[0])"
    )
    # a fresh interpreter: datajoint 0.x reads dj_local_conf.json when it is imported
    result = subprocess.run([sys.executable, "-c", code], cwd=isolated_config, capture_output=True, text=True)
    assert result.stdout.split() == ["True", "False"], result.stderr


@only_dj2
def test_single_writer_from_the_datajoint2_store(isolated_config):
    store = {"protocol": "s3", "endpoint": "minio:9000", "bucket": "b-bucket", "single_writer": True}
    (isolated_config / "datajoint.json").write_text(json.dumps({"stores": {"djarchive_admin": store}}))
    code = "from djarchive_common.config import resolve_single_writer as r; print(r())"
    # a fresh interpreter: datajoint 2.x reads datajoint.json once, when it is imported
    result = subprocess.run([sys.executable, "-c", code], cwd=isolated_config, capture_output=True, text=True)
    assert result.stdout.strip() == "(True, 'datajoint config stores.djarchive_admin.single_writer')", (
        result.stderr
    )
