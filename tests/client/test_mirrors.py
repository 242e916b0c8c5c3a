"""Mirrors: a revision copied with ``djarchive-admin mirror``, served by Python's ``http.server`` on
127.0.0.1, read beside the primary (moto) or instead of it when the primary cannot be reached.

The primary is made unreachable by pointing the client at a port nothing listens on; a manifest
then comes from a mirror only when a trusted key signed it for that dataset and revision.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

from djarchive_admin import admin
from djarchive_admin.cli import main as admin_main
from djarchive_client import DJArchiveClient, client
from djarchive_client.cli import main
from djarchive_common.errors import ConfigurationError, RevisionRetractedError, SignatureError
from djarchive_common.signing import SigningKey, generate_key, signatures_bytes
from djarchive_common.store import StoreOptions
from djarchive_common.transfer import RetryPolicy
from tests.conftest import CLIENT_ACCESS_KEY, CLIENT_SECRET_KEY, closed_port
from tests.faults.proxy import FaultProxy
from tests.helpers import read_tree
from tests.helpers import run_client as run

QUICK = StoreOptions(retry=RetryPolicy(attempts=3, base_delay=0.01, max_delay=0.02, unreachable_attempts=2))
UNREACHABLE = "the archive is unreachable and the mirror's manifest is not signed by a key you trust"


@pytest.fixture(scope="module")
def keys(tmp_path_factory) -> dict[str, SigningKey]:
    """alice is the curator (trusted); mallory is not."""
    folder = tmp_path_factory.mktemp("keys")
    found = {}
    for name in ("alice", "mallory"):
        generate_key(folder / name)
        found[name] = SigningKey.load(folder / name)
    return found


def sign(archive, dataset: str, revision: str, key: SigningKey) -> None:
    manifest = archive.get(f"{dataset}/{revision}/djarchive-manifest.csv")
    archive.put(
        f"{dataset}/{revision}/djarchive-manifest.sig",
        signatures_bytes([key.sign(dataset, revision, manifest)]),
    )


@pytest.fixture
def mirrored(archive, seed_files, keys, make_mirror, tmp_path):
    """some-set 000 published and signed by alice, mirrored with ``djarchive-admin mirror`` into a
    folder that ``http.server`` serves."""
    archive.publish("some-set", "000", seed_files)
    sign(archive, "some-set", "000", keys["alice"])
    root = tmp_path / "mirror-root"
    assert admin_main(["mirror", "some-set", "000", str(root), "-q"]) == 0
    return make_mirror(root)


def primary_down(monkeypatch) -> str:
    """Point the client at a port nothing listens on; return that endpoint."""
    endpoint = f"http://127.0.0.1:{closed_port()}"
    monkeypatch.setenv("DJARCHIVE_CLIENT_ENDPOINT", endpoint)
    return endpoint


# -- making a mirror ---------------------------------------------------------------------------


def test_admin_mirror_writes_the_revision_byte_for_byte_and_resumes(archive, seed_files, keys, tmp_path):
    archive.publish("some-set", "000", seed_files)
    sign(archive, "some-set", "000", keys["alice"])
    root = tmp_path / "mirror"
    (root / "other-set" / "007").mkdir(parents=True)
    (root / "other-set" / "007" / "keep.txt").write_bytes(b"another revision's file")

    result = admin().mirror("some-set", "000", root)

    copied = read_tree(root / "some-set" / "000")
    assert set(copied) == {*seed_files, "djarchive-manifest.csv", "djarchive-manifest.sig"}
    for name, data in copied.items():
        assert data == archive.get(f"some-set/000/{name}"), name
    assert (result.fetched_files, result.present_files, result.signed) == (len(seed_files), 0, True)
    assert (root / "other-set" / "007" / "keep.txt").read_bytes() == b"another revision's file"
    assert not list((root / "some-set" / "000" / ".djarchive" / "tmp").iterdir())

    (root / "some-set" / "000" / "root.dat").write_bytes(b"damaged")  # a re-run repairs, keeps the rest
    again = admin().mirror("some-set", "000", root)
    assert (again.fetched_files, again.present_files) == (1, len(seed_files) - 1)
    assert read_tree(root / "some-set" / "000") == copied


def test_admin_mirror_refuses_an_unpublished_revision_and_writes_no_manifest(archive, tmp_path, capsys):
    archive.put("some-set/000/a.dat", b"a")  # data without a manifest
    archive.publish("some-set", "001", {"a.dat": b"a"})
    code = admin_main(["mirror", "some-set", "000", str(tmp_path / "m")])
    assert code == 1
    assert "not published" in capsys.readouterr().err
    assert not list((tmp_path / "m").rglob("djarchive-manifest.csv"))


# -- the primary unreachable ------------------------------------------------------------------------


def test_signed_revision_downloads_from_the_mirror_with_the_primary_unreachable(
    mirrored, seed_files, keys, monkeypatch, tmp_path, capsys
):
    primary_down(monkeypatch)
    target = tmp_path / "copy"
    code, out, err = run(
        capsys,
        "download", "some-set", "000", str(target), "--mirror", mirrored.url,
        "--trust", keys["alice"].public.line, "--json",
    )  # fmt: skip
    assert code == 0, err
    assert read_tree(target) == seed_files
    summary = json.loads(out)
    assert summary["sources"] == {mirrored.url: sum(map(len, seed_files.values()))}
    assert "retracted since could not be checked" in summary["note"]
    assert "retracted since could not be checked" in err
    # Names with spaces and non-ASCII letters reach the mirror percent-encoded.
    assert any("names/with%20space/" in seen.path for seen in mirrored.gets())
    # The receipt says where the copy came from.
    code, out, err = run(capsys, "status", str(target), "--offline")
    assert code == 0
    assert f"data also from {mirrored.url}" in out


def test_an_unsigned_revision_is_refused_from_a_mirror_and_nothing_is_written(
    archive, seed_files, keys, make_mirror, monkeypatch, tmp_path, capsys
):
    archive.publish("some-set", "000", seed_files)  # not signed
    root = tmp_path / "root"
    admin().mirror("some-set", "000", root)
    mirror = make_mirror(root)
    primary_down(monkeypatch)
    target = tmp_path / "copy"
    for trust in ([], ["--trust", keys["alice"].public.line]):
        code, _, err = run(capsys, "download", "some-set", "000", str(target), "--mirror", mirror.url, *trust)
        assert code == 1
        lines = err.strip().splitlines()
        assert len(lines) == 1, err
        assert UNREACHABLE in lines[0]
        assert not target.exists()


def test_a_revision_signed_by_an_untrusted_key_is_refused_from_a_mirror(
    archive, seed_files, keys, make_mirror, monkeypatch, tmp_path
):
    archive.publish("some-set", "000", seed_files)
    sign(archive, "some-set", "000", keys["mallory"])
    root = tmp_path / "root"
    admin().mirror("some-set", "000", root)
    mirror = make_mirror(root)
    primary_down(monkeypatch)
    reader = DJArchiveClient(mirrors=[mirror.url], trusted_keys=keys["alice"].public.line, options=QUICK)
    with pytest.raises(SignatureError, match=UNREACHABLE) as caught:
        reader.download("some-set", "000", tmp_path / "copy", create_target=True)
    assert caught.value.reason == "untrusted-key"
    assert not (tmp_path / "copy").exists()


def test_a_mirror_serving_an_older_revision_under_a_newer_name_is_refused(
    archive, seed_files, keys, make_mirror, monkeypatch, tmp_path, capsys
):
    older = {name: data for name, data in seed_files.items() if name != "root2.dat"}
    older["root.dat"] = b"the old, since corrected, content"
    archive.publish("some-set", "001", older)
    archive.publish("some-set", "002", seed_files)
    for revision in ("001", "002"):
        sign(archive, "some-set", revision, keys["alice"])
    root = tmp_path / "root"
    for revision in ("001", "002"):
        admin().mirror("some-set", revision, root)
    mirror = make_mirror(root)
    mirror.copy_revision("some-set", "001", onto="002")  # a rollback: 001's signed files as 002
    primary_down(monkeypatch)
    target = tmp_path / "copy"
    code, _, err = run(
        capsys, "download", "some-set", "002", str(target), "--mirror", mirror.url,
        "--trust", keys["alice"].public.line,
    )  # fmt: skip
    assert code == 1
    assert UNREACHABLE in err
    assert "001" in err  # the statement names the revision it was signed for
    assert len(err.strip().splitlines()) == 1
    assert not target.exists()


def test_without_mirrors_an_unreachable_primary_fails_as_before(archive, monkeypatch, tmp_path, capsys):
    primary_down(monkeypatch)
    code, _, err = run(capsys, "download", "some-set", "000", str(tmp_path / "copy"))
    assert code == 1
    assert "cannot reach" in err
    assert "mirror" not in err


# -- mirrors beside the primary -----------------------------------------------------------------------


def many_files(count: int = 24, size: int = 30_000) -> dict[str, bytes]:
    return {f"part{i % 3}/file {i:02d}.bin": bytes([i]) * (size + i) for i in range(count)}


def test_mirrors_from_the_environment_share_the_work_and_never_see_credentials(
    archive, keys, make_mirror, monkeypatch, tmp_path, capsys
):
    files = many_files()
    archive.publish("some-set", "000", files)
    root = tmp_path / "root"
    admin().mirror("some-set", "000", root)
    first, second = make_mirror(root), make_mirror(root)
    monkeypatch.setenv("DJARCHIVE_CLIENT_MIRRORS", f"{first.url}, {second.url}")
    monkeypatch.setenv("DJARCHIVE_CLIENT_ACCESS_KEY", CLIENT_ACCESS_KEY)  # credentials for the primary
    monkeypatch.setenv("DJARCHIVE_CLIENT_SECRET_KEY", CLIENT_SECRET_KEY)
    target = tmp_path / "copy"
    code, out, err = run(capsys, "download", "some-set", "000", str(target), "--json", "--jobs", "4")
    assert code == 0, err
    assert read_tree(target) == files
    sources = json.loads(out)["sources"]
    assert set(sources) == {
        archive.client_env["DJARCHIVE_CLIENT_ENDPOINT"] + f"/{archive.bucket}",
        first.url,
        second.url,
    }
    assert all(count > 0 for count in sources.values()), sources
    assert sum(sources.values()) == sum(map(len, files.values()))
    for mirror in (first, second):
        for seen in mirror.seen:
            names = {name.lower() for name in seen.headers}
            assert not names & {"authorization", "x-amz-date", "x-amz-content-sha256"}, seen
            assert not any(
                secret in value
                for value in seen.headers.values()
                for secret in (CLIENT_ACCESS_KEY, CLIENT_SECRET_KEY)
            )


def test_a_mirror_that_ignores_ranges_serves_large_files_whole(
    archive, keys, make_mirror, monkeypatch, tmp_path
):
    files = {"big.bin": bytes(range(256)) * 4096, "small.bin": b"small"}  # 1 MiB
    archive.publish("some-set", "000", files)
    sign(archive, "some-set", "000", keys["alice"])
    root = tmp_path / "root"
    admin().mirror("some-set", "000", root)
    mirror = make_mirror(root)  # http.server: a 200 with the whole file whatever Range says
    primary_down(monkeypatch)
    reader = DJArchiveClient(mirrors=[mirror.url], trusted_keys=keys["alice"].public.line, options=QUICK)
    summary = reader.download(
        "some-set",
        "000",
        tmp_path / "copy",
        create_target=True,
        part_size=128 * 1024,
        multipart_threshold=256 * 1024,
    )
    assert read_tree(tmp_path / "copy") == files
    assert summary.sources == {mirror.url: sum(map(len, files.values()))}
    ranged = [seen for seen in mirror.gets("big.bin") if "Range" in seen.headers]
    assert len(ranged) <= reader.store.options.pool_size  # found out at once, then whole-file GETs
    assert [seen for seen in mirror.gets("big.bin") if "Range" not in seen.headers]


def test_a_mirror_that_serves_ranges_shares_a_large_file(archive, make_mirror, tmp_path):
    files = {"big.bin": bytes(range(256)) * 8192}  # 2 MiB in 16 ranges
    archive.publish("some-set", "000", files)
    root = tmp_path / "root"
    admin().mirror("some-set", "000", root)
    mirror = make_mirror(root, ranges=True)
    summary = DJArchiveClient(mirrors=[mirror.url]).download(
        "some-set",
        "000",
        tmp_path / "copy",
        create_target=True,
        part_size=128 * 1024,
        multipart_threshold=256 * 1024,
    )
    assert read_tree(tmp_path / "copy") == files
    assert len(summary.sources) == 2, summary.sources
    assert all(summary.sources.values()), summary.sources
    assert sum(summary.sources.values()) == len(files["big.bin"])


def test_a_mirror_missing_files_is_set_aside_for_them(archive, seed_files, make_mirror, tmp_path):
    archive.publish("some-set", "000", seed_files)
    root = tmp_path / "root"
    admin().mirror("some-set", "000", root)
    shutil.rmtree(root / "some-set" / "000" / "sub")  # a partial mirror
    mirror = make_mirror(root)
    summary = DJArchiveClient(mirrors=[mirror.url], options=QUICK).download(
        "some-set", "000", tmp_path / "copy", create_target=True
    )
    assert read_tree(tmp_path / "copy") == seed_files
    assert sum(summary.sources.values()) == sum(map(len, seed_files.values()))


def test_progress_events_name_the_source_of_each_file(
    mirrored, seed_files, keys, monkeypatch, tmp_path, capsys
):
    primary_down(monkeypatch)
    events = tmp_path / "events.jsonl"
    code, _, err = run(
        capsys, "download", "some-set", "000", str(tmp_path / "copy"), "--mirror", mirrored.url,
        "--trust", keys["alice"].public.line, "--events", str(events), "-q",
    )  # fmt: skip
    assert code == 0, err
    fetched = [e for e in map(json.loads, events.read_text().splitlines()) if e.get("status") == "fetched"]
    assert len(fetched) == len(seed_files)
    assert {event["source"] for event in fetched} == {mirrored.url}


# -- retraction, configuration, fsspec, status --------------------------------------------------------


def test_a_mirror_cannot_undo_a_retraction_the_primary_knows(mirrored, keys, tmp_path):
    admin().retract("some-set", "000", reason="a calibration error")
    reader = client(mirrors=[mirrored.url], trusted_keys=keys["alice"].public.line)
    with pytest.raises(RevisionRetractedError, match="a calibration error"):
        reader.download("some-set", "000", tmp_path / "copy", create_target=True)
    assert not (tmp_path / "copy").exists()


def test_mirror_urls_must_end_in_a_slash(capsys, tmp_path):
    with pytest.raises(SystemExit) as caught:
        main(["download", "some-set", "000", str(tmp_path / "c"), "--mirror", "http://h/path"])
    assert caught.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines[0].startswith("usage: djarchive download")
    assert lines[-1].startswith(
        "djarchive download: error: argument --mirror: invalid mirror URL 'http://h/path'"
    )
    assert not (tmp_path / "c").exists()
    with pytest.raises(ConfigurationError, match="must end in '/'"):
        client(mirrors="https://mirror.example.org/x").mirrors  # noqa: B018


def test_mirrors_from_datajoint_and_their_precedence(isolated_config, monkeypatch):
    from djarchive_common.config import resolve_mirrors

    (isolated_config / "dj_local_conf.json").write_text(
        json.dumps({"custom": {"djarchive.client.mirrors": ["https://dj.example.org/m/"]}})
    )
    # In a fresh interpreter: datajoint 0.x reads dj_local_conf.json once, when first imported.
    code = "from djarchive_common.config import resolve_mirrors; print(list(resolve_mirrors()))"
    result = subprocess.run([sys.executable, "-c", code], cwd=isolated_config, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "['https://dj.example.org/m/']"
    monkeypatch.setenv("DJARCHIVE_CLIENT_MIRRORS", "https://a.example.org/ http://b.example.org:8080/x/")
    assert resolve_mirrors() == ("https://a.example.org/", "http://b.example.org:8080/x/")
    assert resolve_mirrors("client", ["https://c.example.org/"]) == ("https://c.example.org/",)
    with pytest.raises(ConfigurationError, match="credentials do not belong"):
        resolve_mirrors("client", ["https://user:hunter2@c.example.org/"])


def test_fsspec_reads_through_a_mirror_with_the_primary_unreachable(mirrored, seed_files, keys, monkeypatch):
    fsspec = pytest.importorskip("fsspec")
    primary_down(monkeypatch)
    monkeypatch.setenv("DJARCHIVE_CLIENT_TRUSTED_KEYS", keys["alice"].public.line)
    fs = fsspec.filesystem("djarchive", mirrors=[mirrored.url], skip_instance_cache=True)
    assert fs.cat_file("some-set/000/sub/dir/dir.dat") == seed_files["sub/dir/dir.dat"]
    with fs.open("some-set/000/root2.dat", block_size=512) as handle:
        assert handle.read() == seed_files["root2.dat"]
        assert handle.verified


def test_status_says_a_mirror_serves_the_revision_when_the_archive_is_unreachable(
    mirrored, s3_server, keys, monkeypatch, tmp_path, capsys
):
    target = tmp_path / "copy"
    with FaultProxy((s3_server.host, s3_server.port)) as proxy:  # the archive, until it goes away
        monkeypatch.setenv("DJARCHIVE_CLIENT_ENDPOINT", proxy.url)
        assert client().download("some-set", "000", target, create_target=True).ok
    monkeypatch.setenv("DJARCHIVE_CLIENT_TRUSTED_KEYS", keys["alice"].public.line)
    code, out, _ = run(capsys, "status", str(target), "--json")
    assert json.loads(out)["mirror"] is None  # no mirror configured
    code, out, _ = run(capsys, "status", str(target), "--mirror", mirrored.url, "--json")
    status = json.loads(out)
    assert code == 0
    assert status["mirror"] == mirrored.url
    assert any("could not be checked" in warning for warning in status["warnings"])


def test_verify_and_files_read_a_signed_manifest_from_a_mirror(
    mirrored, seed_files, keys, monkeypatch, tmp_path, capsys
):
    target = tmp_path / "copy"
    assert client().download("some-set", "000", target, create_target=True).ok
    primary_down(monkeypatch)
    line = keys["alice"].public.line
    code, out, err = run(
        capsys, "verify", "some-set", "000", str(target), "--mirror", mirrored.url, "--trust", line
    )
    assert code == 0, err
    [warning] = err.splitlines()  # said once, as a warning
    assert warning.startswith("djarchive: warning: ")
    assert "could not be checked" in warning
    code, out, err = run(capsys, "files", "some-set", "000", "--mirror", mirrored.url, "--trust", line)
    assert code == 0, err
    assert len(out.strip().splitlines()) == len(seed_files)
    assert "could not be checked" in err


def test_mirrors_from_datajoint_json(isolated_config):
    """datajoint 2.x: ``mirrors`` of the store ``djarchive_client`` in datajoint.json."""
    datajoint = pytest.importorskip("datajoint")
    if not str(datajoint.__version__).startswith("2."):
        pytest.skip("datajoint 2.x configuration (tox factor dj2)")
    store = {
        "protocol": "s3",
        "endpoint": "e.example.org",
        "bucket": "b-bucket",
        "mirrors": ["https://m.example.org/x/"],
    }
    (isolated_config / "datajoint.json").write_text(json.dumps({"stores": {"djarchive_client": store}}))
    code = "from djarchive_client import client; print([m.url for m in client().mirrors])"
    result = subprocess.run([sys.executable, "-c", code], cwd=isolated_config, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "['https://m.example.org/x/']"
