"""The ``djarchive-admin`` command line: plain and --json output, exit codes, one-line errors."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import sys

import pytest

pytest.importorskip("djarchive_admin")

from djarchive_admin.cli import main
from djarchive_client.cli import main as client_main
from tests.admin.support import DATASET, REVISION, revision_keys
from tests.conftest import ADMIN_SECRET_KEY
from tests.helpers import bash_complete, manifest_bytes, write_tree
from tests.helpers import run_admin as run


def total(files: dict[str, bytes]) -> int:
    return sum(map(len, files.values()))


def test_manifest_command(capsys, source, seed_files):
    code, out, err = run(capsys, "manifest", str(source))
    assert (code, err) == (0, "")
    assert out == f"wrote {source.resolve() / 'djarchive-manifest.csv'}: 6 files (531.4 kB)\n"
    assert (source / "djarchive-manifest.csv").read_bytes() == manifest_bytes(seed_files)

    code, out, err = run(capsys, "manifest", str(source))
    assert (code, out) == (1, "")
    assert err.count("\n") == 1
    assert err.rstrip().endswith("djarchive-manifest.csv already exists; pass --overwrite to replace it")

    code, out, err = run(
        capsys, "manifest", str(source), "--overwrite", "--json", "--filter", "^sub$", "-j", "2"
    )
    assert code == 0
    document = json.loads(out)
    assert document["files"] == len([name for name in seed_files if not name.startswith("sub/")])


def test_upload_plain_output(archive, capsys, source, seed_files):
    code, out, err = run(capsys, "upload", DATASET, REVISION, str(source))

    assert (code, err) == (0, "")
    assert out.startswith(
        f"{DATASET} {REVISION}: 6 files (531.4 kB) from {source.resolve()}; sent 6 (531.4 kB), "
    )
    assert out.rstrip().endswith("; published")
    assert archive.keys() == revision_keys(DATASET, REVISION, seed_files)


def test_upload_json_and_quiet(archive, capsys, source, seed_files):
    code, out, err = run(capsys, "upload", DATASET, REVISION, str(source), "--no-publish", "--json")
    assert (code, err) == (0, "")
    document = json.loads(out)
    assert document["state"] == "staged"
    assert (document["files"], document["bytes"]) == (6, total(seed_files))
    assert (document["uploaded_files"], document["stored_files"], document["ok"]) == (6, 0, True)
    assert document["overwrote"] is None

    code, out, err = run(capsys, "-q", "publish", DATASET, REVISION)
    assert (code, out, err) == (0, "", "")
    assert archive.keys() == revision_keys(DATASET, REVISION, seed_files)


def test_publish_output(archive, capsys, source, seed_files):
    assert run(capsys, "upload", DATASET, REVISION, str(source), "--no-publish")[0] == 0

    code, out, err = run(capsys, "publish", DATASET, REVISION)
    assert (code, out, err) == (0, "published my-dataset 001: 6 files (531.4 kB)\n", "")

    code, out, err = run(capsys, "publish", DATASET, REVISION, "--json")
    where = f"{archive.server.url}/{archive.bucket}"
    message = (
        f"my-dataset 001 is already published at {where}; published revisions "
        "are immutable: pass --force to replace its manifest with the staged one"
    )
    assert code == 1
    assert json.loads(out) == {"error": message, "type": "RevisionPublishedError"}
    assert err == f"djarchive-admin: error: {message}\n"


def test_upload_refusal_is_one_line(archive, capsys, source):
    assert run(capsys, "upload", DATASET, REVISION, str(source))[0] == 0

    code, out, err = run(capsys, "upload", DATASET, REVISION, str(source))

    assert (code, out) == (1, "")
    assert err.startswith("djarchive-admin: error: my-dataset 001 is already published (6 files, 531.4 kB)")
    assert err.count("\n") == 1
    assert "Traceback" not in err


def test_force_upload_states_what_it_overwrites(archive, capsys, source):
    assert run(capsys, "upload", DATASET, REVISION, str(source))[0] == 0
    (source / "root.dat").write_bytes(b"changed")
    (source / "root2.dat").unlink()

    code, out, err = run(capsys, "upload", DATASET, REVISION, str(source), "--force")

    assert code == 0
    assert err.splitlines() == [
        "djarchive-admin: warning: overwrote my-dataset 001: the published revision (6 files, 531.4 kB): "
        "1 file changed, 1 removed, 0 added",
        "djarchive-admin: warning: deleted 1 object the new manifest does not list: root2.dat",
    ]
    assert "sent 1 (7 B), 4 already stored" in out


def test_mismatch_error_names_the_file(archive, capsys, source):
    assert run(capsys, "manifest", str(source))[0] == 0
    (source / "sub" / "sub.dat").write_bytes(b"edited")

    code, out, err = run(capsys, "upload", DATASET, REVISION, str(source))

    assert (code, out) == (1, "")
    assert "does not match 1 file: sub/sub.dat (6 bytes, the manifest says 4096)" in err
    # the way out, as a command: rebuild the manifest
    assert err.endswith(
        f"; if the files are right, rebuild it with djarchive-admin manifest --overwrite {source.resolve()}\n"
    )
    assert archive.keys() == []


def test_missing_credentials_one_clear_line(archive, capsys, source, monkeypatch):
    monkeypatch.delenv("DJARCHIVE_ADMIN_ACCESS_KEY")
    monkeypatch.delenv("DJARCHIVE_ADMIN_SECRET_KEY")

    for argv in (
        ["upload", DATASET, REVISION, str(source)],
        ["publish", DATASET, REVISION],
        ["retract", DATASET, REVISION, "--purge", "--yes"],
        ["revisions", "--all"],
    ):
        code, out, err = run(capsys, *argv)
        assert (code, out) == (2, ""), argv  # a configuration problem: exit 2, like bad usage
        assert err == (
            "djarchive-admin: error: admin credentials are not configured: set "
            "DJARCHIVE_ADMIN_ACCESS_KEY and DJARCHIVE_ADMIN_SECRET_KEY, or "
            "djarchive.admin.access_key/secret_key in DataJoint's configuration "
            "(see the README, 'Configuration')\n"
        )
    assert archive.keys() == []


def test_secrets_never_printed_with_debug(archive, capsys, source):
    code, out, err = run(capsys, "--debug", "upload", DATASET, REVISION, str(source))
    assert code == 0
    assert "DEBUG" in err
    assert ADMIN_SECRET_KEY not in out + err


def test_revisions_all_plain_and_json(archive, capsys, tmp_path, seed_files):
    source = write_tree(tmp_path / "src", seed_files)
    small = write_tree(tmp_path / "small", {"a.txt": b"abc"})
    assert run(capsys, "upload", "set-a", "2", str(source))[0] == 0
    assert run(capsys, "upload", "set-a", "10", str(small))[0] == 0
    assert run(capsys, "upload", "set-a", "11", str(small), "--no-publish")[0] == 0
    archive.put("set-b/001/partial.bin", b"12345")  # an upload that never finished
    size = total(seed_files)

    code, out, err = run(capsys, "revisions", "--all")
    assert (code, err) == (0, "")
    assert out.splitlines() == [
        f"set-a,2,published,6,{size}",
        "set-a,10,published,1,3",
        "set-a,11,staged,1,3",
        "set-b,001,incomplete,1,5",
    ]

    code, out, _ = run(capsys, "revisions")
    assert (code, out) == (0, "set-a,2\nset-a,10\n")

    code, out, _ = run(capsys, "revisions", "set-a", "--all", "--json")
    assert code == 0
    assert json.loads(out) == [
        {"dataset": "set-a", "revision": "2", "state": "published", "files": 6, "bytes": size},
        {"dataset": "set-a", "revision": "10", "state": "published", "files": 1, "bytes": 3},
        {"dataset": "set-a", "revision": "11", "state": "staged", "files": 1, "bytes": 3},
    ]
    code, out, _ = run(capsys, "revisions", "--json")
    assert json.loads(out) == [{"dataset": "set-a", "revision": "2"}, {"dataset": "set-a", "revision": "10"}]

    code, out, err = run(capsys, "revisions", "set-b")
    assert (code, out) == (1, "")
    assert "dataset 'set-b' not found" in err
    code, out, err = run(capsys, "revisions", "set-b", "--all")
    assert (code, out) == (0, "set-b,001,incomplete,1,5\n")


def test_staged_revision_invisible_to_the_client_cli(archive, capsys, source):
    assert run(capsys, "upload", DATASET, REVISION, str(source), "--no-publish")[0] == 0

    assert client_main(["datasets"]) == 0
    assert client_main(["revisions"]) == 0
    out, _ = capsys.readouterr()
    assert out == ""
    assert client_main(["files", DATASET, REVISION]) == 1
    capsys.readouterr()

    assert run(capsys, "publish", DATASET, REVISION)[0] == 0
    assert client_main(["datasets"]) == 0
    assert client_main(["revisions"]) == 0
    out, _ = capsys.readouterr()
    assert out == f"{DATASET}\n{DATASET},{REVISION}\n"


def test_retract_output(archive, capsys, source, seed_files):
    assert run(capsys, "upload", DATASET, REVISION, str(source))[0] == 0

    code, out, err = run(capsys, "retract", DATASET, REVISION)
    assert (code, err) == (0, "")
    assert out == (
        "retracted my-dataset 001: hidden from clients; its 6 files (531.4 kB) are kept "
        "(publish it again with: djarchive-admin publish my-dataset 001)\n"
    )
    assert archive.get(f"{DATASET}/{REVISION}/djarchive-manifest.retracted.csv") == manifest_bytes(seed_files)
    assert client_main(["revisions"]) == 0
    assert capsys.readouterr().out == ""

    code, out, err = run(capsys, "retract", DATASET, REVISION, "--json")
    assert code == 1
    assert json.loads(out)["type"] == "RevisionNotFoundError"
    assert "my-dataset 001 is not published (it is retracted); nothing to retract" in json.loads(out)["error"]
    assert "my-dataset 001 is not published (it is retracted); nothing to retract" in err


def test_purge_asks_first(archive, capsys, source, seed_files, monkeypatch):
    assert run(capsys, "upload", DATASET, REVISION, str(source))[0] == 0
    keys = archive.keys()

    code, out, err = run(capsys, "retract", DATASET, REVISION, "--purge")  # stdin is not a terminal
    assert (code, out) == (1, "")
    assert err.startswith(
        "djarchive-admin: error: --purge would delete my-dataset 001 (published, 6 files, 531.4 kB)"
    )
    assert err.rstrip().endswith("pass --yes to confirm")
    assert archive.keys() == keys

    monkeypatch.setattr(sys, "stdin", Terminal("n\n"))
    code, out, err = run(capsys, "retract", DATASET, REVISION, "--purge")
    assert (code, out) == (1, "")
    assert err.endswith("? [y/N] djarchive-admin: nothing done\n")
    assert archive.keys() == keys

    monkeypatch.setattr(sys, "stdin", Terminal("y\n"))
    code, out, err = run(capsys, "retract", DATASET, REVISION, "--purge")
    assert code == 0
    assert out == "purged my-dataset 001: deleted 7 objects (531.4 kB)\n"
    assert archive.keys() == []


def test_purge_with_yes_and_json(archive, capsys, source, seed_files):
    assert run(capsys, "upload", DATASET, REVISION, str(source), "--no-publish")[0] == 0

    code, out, _ = run(capsys, "retract", DATASET, REVISION, "--purge", "--yes", "--json")

    assert code == 0
    assert json.loads(out) == {
        "dataset": DATASET,
        "revision": REVISION,
        "state": "purged",
        "files": 6,
        "bytes": total(seed_files),
        "purged": True,
        "deleted_objects": 7,
        "reason": "",
        "superseded_by": None,
    }
    assert archive.keys() == []


def test_usage(capsys):
    assert main([]) == 2
    assert "usage: djarchive-admin" in capsys.readouterr().err
    assert main(["--version"]) == 0
    assert capsys.readouterr().out == "djarchive-admin 0.1.0\n"
    with pytest.raises(SystemExit) as exited:
        main(["upload", DATASET])
    assert exited.value.code == 2
    with pytest.raises(SystemExit):
        main(["upload", DATASET, REVISION, ".", "--jobs", "0"])


@pytest.mark.skipif(not shutil.which("bash"), reason="needs bash")
def test_bash_completion_covers_the_admin_commands(capsys, tmp_path):
    assert main(["completion", "bash"]) == 0
    script = tmp_path / "djarchive-admin.bash"
    script.write_text(capsys.readouterr().out)

    def complete(line: str) -> list[str]:
        return bash_complete(script, "_djarchive_admin_complete", line)

    assert complete("djarchive-admin re") == ["retract", "revisions"]
    assert complete("djarchive-admin upload --no") == ["--no-delta", "--no-publish"]
    assert "--purge" in complete("djarchive-admin retract --")
    assert complete("djarchive-admin --endpoint minio.lab:9000 --bucket b up") == ["upload"]
    assert complete("djarchive-admin upload --filter '^x' --jobs 4 --no") == ["--no-delta", "--no-publish"]


def test_help_is_light():
    code = (
        "import sys\n"
        "from djarchive_admin.cli import main\n"
        "try:\n    main(['upload', '--help'])\nexcept SystemExit:\n    pass\n"
        "print('HEAVY', sorted(m for m in ('minio', 'datajoint', 'urllib3', 'tqdm') if m in sys.modules))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "--no-publish" in result.stdout
    assert result.stdout.rstrip().endswith("HEAVY []")


class Terminal(io.StringIO):
    """Standard input that claims to be a terminal."""

    def isatty(self) -> bool:
        return True


def test_every_failure_prints_a_json_object(archive, capsys, source, monkeypatch):
    assert run(capsys, "upload", DATASET, REVISION, str(source))[0] == 0

    code, out, err = run(capsys, "retract", DATASET, REVISION, "--purge", "--json")  # not a terminal
    document = json.loads(out)
    assert (code, document["type"]) == (1, "UsageError")
    assert document["error"].endswith("pass --yes to confirm")
    assert err == f"djarchive-admin: error: {document['error']}\n"

    monkeypatch.setattr(sys, "stdin", Terminal("n\n"))
    code, out, err = run(capsys, "retract", DATASET, REVISION, "--purge", "--json")
    assert (code, json.loads(out)) == (1, {"error": "nothing done", "type": "Cancelled"})

    with pytest.raises(SystemExit) as exited:
        main(["upload", DATASET, "--json"])
    out, err = capsys.readouterr()
    assert exited.value.code == 2
    assert json.loads(out) == {
        "error": "the following arguments are required: REVISION, SOURCE",
        "type": "UsageError",
    }

    monkeypatch.delenv("DJARCHIVE_ADMIN_SECRET_KEY")
    code, out, err = run(capsys, "publish", DATASET, REVISION, "--json")
    document = json.loads(out)
    assert (code, document["type"]) == (2, "ConfigurationError")  # half of the credentials
    assert "admin access key is configured (DJARCHIVE_ADMIN_ACCESS_KEY) but the secret" in document["error"]
    monkeypatch.delenv("DJARCHIVE_ADMIN_ACCESS_KEY")
    code, out, err = run(capsys, "publish", DATASET, REVISION, "--json")
    assert (code, json.loads(out)["type"]) == (2, "MissingCredentialsError")


def test_advice_names_the_flags(archive, capsys, source):
    code, _, err = run(capsys, "publish", DATASET, REVISION)
    assert code == 1
    assert err.rstrip().endswith(
        "upload it first (with djarchive-admin upload --no-publish to stage it without publishing)"
    )

    archive.put(f"{DATASET}/{REVISION}/old/stray.bin", b"x")
    code, _, err = run(capsys, "upload", DATASET, REVISION, str(source))
    assert code == 1
    assert "holds 1 object not in the manifest: old/stray.bin; nothing was uploaded: pass --force to" in err

    assert run(capsys, "upload", DATASET, REVISION, str(source), "--force", "--no-publish")[0] == 0
    code, _, err = run(capsys, "retract", DATASET, REVISION)
    assert code == 1
    assert err.rstrip().endswith("nothing to retract (--purge deletes what is stored)")

    archive.put(f"{DATASET}/{REVISION}/stray.bin", b"x")
    code, _, err = run(capsys, "publish", DATASET, REVISION)
    assert code == 1
    assert "stray.bin; djarchive-admin upload --force deletes the objects not in the manifest" in err
    assert "=True" not in err


def test_one_file_is_one_file(archive, capsys, tmp_path):
    source = write_tree(tmp_path / "single", {"only.dat": b"1"})

    code, out, _ = run(capsys, "manifest", str(source))
    assert (code, out) == (0, f"wrote {source.resolve() / 'djarchive-manifest.csv'}: 1 file (1 B)\n")
    code, out, _ = run(capsys, "upload", DATASET, REVISION, str(source))
    assert code == 0
    assert out.startswith(f"{DATASET} {REVISION}: 1 file (1 B) from ")
    code, out, _ = run(capsys, "retract", DATASET, REVISION)
    assert out.startswith(f"retracted {DATASET} {REVISION}: hidden from clients; its 1 file (1 B) is kept")
    (source / "extra.dat").write_bytes(b"2")
    code, _, err = run(capsys, "upload", DATASET, "002", str(source))
    assert code == 1
    assert "does not match the source folder: 1 file not in the manifest (untracked): extra.dat" in err
    assert "1 files" not in out + err
