"""``djarchive://``: the read-only fsspec filesystem over published revisions, against the local
S3 server: listings from manifests, ranged and verified reads, ``get`` through the download
engine, errors, and the libraries that read through it (pandas, h5py, Dask on worker processes)."""

from __future__ import annotations

import gc
import io
import os
import pickle

import pytest

fsspec = pytest.importorskip("fsspec")

from djarchive_client.filesystem import DJArchiveFileSystem  # noqa: E402
from djarchive_common.errors import IntegrityError, NotFoundError, PermissionDeniedError  # noqa: E402
from djarchive_common.store import ObjectStream, Store  # noqa: E402
from djarchive_common.transfer import RetryPolicy  # noqa: E402
from tests.conftest import CLIENT_ACCESS_KEY, CLIENT_SECRET_KEY  # noqa: E402
from tests.helpers import read_tree, sha256  # noqa: E402

KiB, MiB = 1024, 1024 * 1024
CSV = b"session,units,rate\n" + b"".join(b"s%03d,%d,%.2f\n" % (n, n * 3 % 17, n / 7) for n in range(200))


@pytest.fixture(autouse=True)
def fresh_filesystems():
    """fsspec caches filesystem instances by their arguments; each test has its own bucket."""
    DJArchiveFileSystem.clear_instance_cache()
    yield
    DJArchiveFileSystem.clear_instance_cache()


@pytest.fixture
def served(monkeypatch):
    """Every GET the store starts (key, offset, length) and the body bytes it received."""
    requests: list[tuple[str, int, int]] = []
    received = [0]
    stream, read = Store.stream, ObjectStream.read

    def spy_stream(self, key, offset=0, length=0, **kwargs):
        requests.append((key, offset, length))
        return stream(self, key, offset, length, **kwargs)

    def spy_read(self, size):
        data = read(self, size)
        received[0] += len(data)
        return data

    monkeypatch.setattr(Store, "stream", spy_stream)
    monkeypatch.setattr(ObjectStream, "read", spy_read)
    return requests, received


@pytest.fixture
def no_backoff(monkeypatch):
    monkeypatch.setattr(RetryPolicy, "delay", lambda self, attempt: 0.0)


@pytest.fixture
def tree(archive):
    files = {
        "table.csv": CSV,
        "sessions/a.csv": b"x,y\n1,2\n",
        "sessions/b.csv": b"x,y\n3,4\n5,6\n",
        "sessions/raw/probe.bin": os.urandom(300 * KiB),
        "empty.txt": b"",
    }
    archive.publish("ds", "1", files)
    archive.publish("ds", "2", {"table.csv": CSV})
    archive.publish("other", "v1", {"x.bin": b"x"})
    return files


def test_the_protocol_is_registered_by_the_entry_point(archive, tree):
    assert fsspec.get_filesystem_class("djarchive") is DJArchiveFileSystem
    with fsspec.open("djarchive://ds/1/table.csv", "rb") as handle:
        assert handle.read() == CSV
    with fsspec.open("djarchive://ds/1/sessions/a.csv", "rt") as handle:
        assert handle.read() == "x,y\n1,2\n"


def test_listings_come_from_the_catalog_and_the_manifest(archive, tree, served):
    fs = fsspec.filesystem("djarchive")
    assert fs.ls("", detail=False) == ["ds", "other"]
    assert fs.ls("djarchive://", detail=False) == ["ds", "other"]
    assert fs.ls("djarchive://ds", detail=False) == ["ds/1", "ds/2"]
    assert fs.ls("ds/1", detail=False) == ["ds/1/empty.txt", "ds/1/sessions", "ds/1/table.csv"]
    assert fs.ls("ds/1/sessions/") == [
        {"name": "ds/1/sessions/a.csv", "size": 8, "type": "file", "sha256": sha256(tree["sessions/a.csv"])},
        {"name": "ds/1/sessions/b.csv", "size": 12, "type": "file", "sha256": sha256(tree["sessions/b.csv"])},
        {"name": "ds/1/sessions/raw", "size": 0, "type": "directory"},
    ]
    assert fs.ls("ds/1/table.csv", detail=False) == ["ds/1/table.csv"]  # a file lists itself
    assert fs.info("djarchive://ds/1/sessions/raw/probe.bin") == {
        "name": "ds/1/sessions/raw/probe.bin",
        "size": 300 * KiB,
        "type": "file",
        "sha256": sha256(tree["sessions/raw/probe.bin"]),
    }
    assert fs.info("ds/1")["type"] == fs.info("ds")["type"] == fs.info("")["type"] == "directory"
    assert fs.glob("djarchive://ds/1/**/*.csv") == [
        "ds/1/sessions/a.csv",
        "ds/1/sessions/b.csv",
        "ds/1/table.csv",
    ]
    assert fs.glob("ds/*/table.csv") == ["ds/1/table.csv", "ds/2/table.csv"]
    assert fs.find("ds/1/sessions") == [
        "ds/1/sessions/a.csv",
        "ds/1/sessions/b.csv",
        "ds/1/sessions/raw/probe.bin",
    ]
    assert fs.find("ds/1", maxdepth=1, withdirs=True) == [
        "ds/1",
        "ds/1/empty.txt",
        "ds/1/sessions",
        "ds/1/table.csv",
    ]
    assert fs.du("ds/1") == sum(len(data) for data in tree.values())
    assert fs.du("ds/1/sessions", total=False)["ds/1/sessions/b.csv"] == 12
    assert fs.exists("ds/1/sessions")
    assert fs.isdir("ds/1/sessions")
    assert not fs.isfile("ds/1/sessions")
    assert fs.isfile("ds/1/table.csv")
    assert not fs.isdir("ds/1/table.csv")
    assert not fs.exists("ds/1/nothing.csv")
    assert not fs.exists("ds/9")
    assert not fs.exists("nowhere")
    assert fs.ukey("ds/1/table.csv") == fs.ukey("ds/2/table.csv") == sha256(CSV)
    # One manifest read per revision, whatever was asked; no data object was read to list.
    keys = [key for key, _, _ in served[0]]
    assert keys.count("ds/1/djarchive-manifest.csv") == keys.count("ds/2/djarchive-manifest.csv") == 1
    metadata = {"djarchive-manifest.csv", "djarchive-manifest.sig", "djarchive-retraction.json"}
    assert {key.rpartition("/")[2] for key in keys} <= metadata


def test_no_bucket_listing_below_a_revision(archive, tree, monkeypatch):
    fs = fsspec.filesystem("djarchive")
    fs.ls("ds")  # the catalog's listing: datasets and revisions
    listed = []
    objects, prefixes = Store.objects, Store.prefixes
    monkeypatch.setattr(Store, "objects", lambda self, prefix: listed.append(prefix) or objects(self, prefix))
    monkeypatch.setattr(
        Store, "prefixes", lambda self, prefix="": listed.append(prefix) or prefixes(self, prefix)
    )
    archive.put("ds/1/sessions/stray.csv", b"not in the manifest")
    assert fs.find("ds/1") == sorted(f"ds/1/{subpath}" for subpath in tree)
    assert fs.glob("ds/1/sessions/*") == ["ds/1/sessions/a.csv", "ds/1/sessions/b.csv", "ds/1/sessions/raw"]
    assert not fs.exists("ds/1/sessions/stray.csv")
    assert listed == []


def test_unpublished_and_retracted_revisions_are_not_there(archive, tree):
    archive.put("ds/3/staged.bin", b"uploaded, never published")
    archive.put("ds/4/x.bin", b"x")
    archive.put("ds/4/djarchive-retraction.json", b'{"reason": "wrong calibration", "superseded_by": "1"}')
    fs = fsspec.filesystem("djarchive")
    assert fs.ls("ds", detail=False) == ["ds/1", "ds/2"]
    with pytest.raises(FileNotFoundError, match="not published"):
        fs.ls("ds/3")
    with pytest.raises(FileNotFoundError, match="wrong calibration"):
        fs.open("ds/4/x.bin")
    assert not fs.exists("ds/3/staged.bin")


def test_reads_whole_in_part_and_by_ranges(archive, tree, served):
    fs = fsspec.filesystem("djarchive")
    probe = tree["sessions/raw/probe.bin"]
    assert fs.cat_file("ds/1/sessions/raw/probe.bin") == probe
    assert fs.cat_file("ds/1/sessions/raw/probe.bin", 1000, 5000) == probe[1000:5000]
    assert fs.cat_file("ds/1/sessions/raw/probe.bin", -100) == probe[-100:]
    assert fs.cat("ds/1/sessions/*.csv") == {
        "ds/1/sessions/a.csv": tree["sessions/a.csv"],
        "ds/1/sessions/b.csv": tree["sessions/b.csv"],
    }
    assert fs.cat_file("ds/1/empty.txt") == b""
    assert fs.head("ds/1/table.csv", 7) == b"session"
    assert fs.tail("ds/1/table.csv", 5) == CSV[-5:]
    ranged = [request for request in served[0] if request[0].endswith("probe.bin") and request[2]]
    assert (1000, 4000) in [(offset, length) for _, offset, length in ranged]
    with fs.open("ds/1/sessions/raw/probe.bin", block_size=64 * KiB) as handle:
        handle.seek(200 * KiB)
        assert handle.read(10) == probe[200 * KiB : 200 * KiB + 10]
        assert not handle.verified  # random access is not verified
        handle.seek(0)
        assert handle.read() == probe
        assert handle.verified  # ... but reading it all in order is


def test_a_whole_read_verifies_and_random_access_cannot(archive, tree, no_backoff):
    tampered = bytearray(tree["sessions/raw/probe.bin"])
    tampered[123_456] ^= 1
    archive.put("ds/1/sessions/raw/probe.bin", bytes(tampered))  # same size, other bytes
    fs = fsspec.filesystem("djarchive")
    with pytest.raises(IntegrityError, match="does not match the manifest"):
        fs.cat_file("djarchive://ds/1/sessions/raw/probe.bin")
    with fs.open("ds/1/sessions/raw/probe.bin", block_size=32 * KiB) as handle:
        data = b""
        while len(data) + 10 * KiB < len(tampered):
            data += handle.read(10 * KiB)
        with pytest.raises(IntegrityError, match="does not match the manifest"):
            handle.read(10 * KiB)  # the read reaching the end raises, its bytes held back
        assert data == bytes(tampered[: len(data)])
        handle.seek(len(tampered) - 1)
        with pytest.raises(IntegrityError):  # and the handle stays failed
            handle.read(1)
    with fs.open("ds/1/sessions/raw/probe.bin", block_size=32 * KiB) as handle:
        handle.seek(123_000)
        assert handle.read(1000) == bytes(tampered[123_000:124_000])  # random access: not checked
    assert fs.cat_file("ds/1/sessions/raw/probe.bin", 123_000, 124_000) == bytes(tampered[123_000:124_000])
    archive.put("ds/1/table.csv", CSV[:-1])  # another size: refused even for a part
    with pytest.raises(IntegrityError, match="manifest says"):
        fs.cat_file("ds/1/table.csv", 0, 10)


def test_pandas_reads_a_csv_in_place(archive, tree):
    pd = pytest.importorskip("pandas")
    frame = pd.read_csv("djarchive://ds/1/table.csv")
    assert list(frame.columns) == ["session", "units", "rate"]
    assert len(frame) == 200
    assert frame["units"].sum() == sum(n * 3 % 17 for n in range(200))
    archive.put("ds/1/table.csv", CSV.replace(b"s007", b"s700"))
    DJArchiveFileSystem.clear_instance_cache()
    with pytest.raises(IntegrityError):
        pd.read_csv("djarchive://ds/1/table.csv")


def test_h5py_reads_a_slice_by_ranges_without_the_whole_file(archive, tmp_path, served):
    h5py = pytest.importorskip("h5py")
    np = pytest.importorskip("numpy")
    values = np.random.default_rng(1).random(8 * MiB)  # 64 MiB of float64
    with h5py.File(tmp_path / "rec.h5", "w") as out:
        out.create_dataset("lfp", data=values)
        out.create_dataset("units", data=np.arange(50))
        out.attrs["probe"] = "np1"
    data = (tmp_path / "rec.h5").read_bytes()
    archive.publish("ds", "1", {"ephys/rec.h5": data})
    served[0].clear()
    served[1][0] = 0
    with fsspec.open("djarchive://ds/1/ephys/rec.h5", "rb") as handle, h5py.File(handle, "r") as recording:
        assert recording.attrs["probe"] == "np1"
        assert recording["lfp"].shape == (8 * MiB,)
        np.testing.assert_array_equal(recording["lfp"][5_000_000:5_000_100], values[5_000_000:5_000_100])
        np.testing.assert_array_equal(recording["units"][:], np.arange(50))
    gets = [(offset, length) for key, offset, length in served[0] if key.endswith("rec.h5")]
    assert gets
    assert all(length for _, length in gets)
    assert served[1][0] < len(data) / 4, (served[1][0], len(data), gets)


@pytest.mark.slow
def test_dask_dataframe_over_a_glob_on_worker_processes(archive, tree):
    """The workers (separate processes) get the configuration from the environment they inherit;
    each file is one partition read whole, so a tampered one fails the computation."""
    dd = pytest.importorskip("dask.dataframe")
    bag = pytest.importorskip("dask.bag")
    distributed = pytest.importorskip("distributed")
    pd = pytest.importorskip("pandas")
    with (
        distributed.LocalCluster(
            n_workers=2, processes=True, threads_per_worker=1, dashboard_address="127.0.0.1:0"
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        frame = dd.read_csv("djarchive://ds/1/sessions/*.csv")
        assert frame.npartitions == 2
        total = frame.compute()
        assert bag.read_text("djarchive://ds/*/table.csv").count().compute() == 2 * CSV.count(b"\n")
        workers = client.run(os.getpid)
        archive.put("ds/1/sessions/b.csv", b"x,y\n3,4\n5,7\n")  # same size, other bytes
        with pytest.raises(IntegrityError, match=r"sessions/b\.csv: sha256"):
            dd.read_csv("djarchive://ds/1/sessions/*.csv").compute()
    assert os.getpid() not in workers.values()
    pd.testing.assert_frame_equal(
        total.reset_index(drop=True), pd.DataFrame({"x": [1, 3, 5], "y": [2, 4, 6]})
    )


def test_get_downloads_with_the_engine_as_fsspec_maps_paths(archive, tree, tmp_path, served):
    fs = fsspec.filesystem("djarchive")
    whole = tmp_path / "whole"
    fs.get("djarchive://ds/1", str(whole), recursive=True)  # a new folder: the revision's contents
    assert read_tree(whole) == tree
    assert sorted(p.name for p in whole.iterdir()) == ["empty.txt", "sessions", "table.csv"]  # no state
    served[0].clear()
    fs.get("ds/1/", str(whole), recursive=True)  # the contents again: all present, nothing fetched
    assert [key for key, _, _ in served[0] if not key.endswith(("manifest.csv", "manifest.sig"))] == []
    fs.get("ds/1", str(whole), recursive=True)  # into an existing folder: under the revision's name
    assert read_tree(whole / "1") == tree

    sub = tmp_path / "sub"
    fs.get("ds/1/sessions/", str(sub) + "/", recursive=True)  # a subfolder's contents, renamed
    assert read_tree(sub) == {
        "a.csv": tree["sessions/a.csv"],
        "b.csv": tree["sessions/b.csv"],
        "raw/probe.bin": tree["sessions/raw/probe.bin"],
    }
    fs.get("ds/1/sessions/*.csv", str(tmp_path / "flat") + "/")  # a glob into a folder
    assert read_tree(tmp_path / "flat") == {"a.csv": tree["sessions/a.csv"], "b.csv": tree["sessions/b.csv"]}
    fs.get_file("djarchive://ds/1/sessions/raw/probe.bin", str(tmp_path / "one" / "probe copy.bin"))
    assert (tmp_path / "one" / "probe copy.bin").read_bytes() == tree["sessions/raw/probe.bin"]
    fs.get(["ds/1/table.csv", "ds/2/table.csv"], [str(tmp_path / "t1.csv"), str(tmp_path / "t2.csv")])
    assert (tmp_path / "t1.csv").read_bytes() == (tmp_path / "t2.csv").read_bytes() == CSV
    buffer = io.BytesIO()
    fs.get_file("ds/1/table.csv", buffer)  # a file object: streamed and verified
    assert buffer.getvalue() == CSV


def test_get_uses_the_engine_in_parallel_and_never_places_a_bad_file(archive, tree, tmp_path, monkeypatch):
    from djarchive_client import DJArchiveClient

    calls = []
    download = DJArchiveClient.download
    monkeypatch.setattr(
        DJArchiveClient,
        "download",
        lambda self, *args, **kwargs: calls.append((args, kwargs)) or download(self, *args, **kwargs),
    )
    fs = fsspec.filesystem("djarchive", jobs=4)
    fs.get("ds/1/sessions", str(tmp_path / "s"), recursive=True)
    ((_args, kwargs),) = calls
    assert kwargs["jobs"] == 4
    assert sorted(kwargs["paths"]) == [
        "sessions/a.csv",
        "sessions/b.csv",
        "sessions/raw/probe.bin",
    ]
    archive.put("ds/1/table.csv", CSV.replace(b"s007", b"s700"))
    from djarchive_common.errors import PartialFailureError

    monkeypatch.setattr(RetryPolicy, "delay", lambda self, attempt: 0.0)
    with pytest.raises(PartialFailureError, match="1 of 1 file"):
        fs.get("ds/1/table.csv", str(tmp_path / "bad.csv"))
    assert not (tmp_path / "bad.csv").exists()


def test_get_leaves_only_the_files_it_was_asked_for(archive, tree, tmp_path, monkeypatch):
    fs = fsspec.filesystem("djarchive")
    where = tmp_path / "where"
    fs.get(
        ["ds/1/table.csv", "ds/1/sessions/a.csv"], [str(where / "x" / "t.csv"), str(where / "y" / "a.csv")]
    )
    assert read_tree(where) == {"x/t.csv": CSV, "y/a.csv": tree["sessions/a.csv"]}
    everything = sorted(path.relative_to(where).as_posix() for path in where.rglob("*"))
    assert everything == ["x", "x/t.csv", "y", "y/a.csv"]  # no .djarchive here, in x, y or above

    archive.put("ds/1/sessions/b.csv", tree["sessions/b.csv"].replace(b"5", b"7"))
    monkeypatch.setattr(RetryPolicy, "delay", lambda self, attempt: 0.0)
    from djarchive_common.errors import PartialFailureError

    with pytest.raises(PartialFailureError):
        fs.get("ds/1/sessions/", str(where / "z") + "/", recursive=True)
    assert sorted(path.name for path in (where / "z").iterdir()) == ["a.csv", "raw"]  # the bad one: not there
    assert sorted(path.name for path in where.iterdir()) == ["x", "y", "z"]


# fsspec's blockcache:: leaves its sparse cache file for the garbage collector to close.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning", "ignore::ResourceWarning")
def test_fsspec_caching_layers_work_on_top(archive, tree, tmp_path):
    probe = tree["sessions/raw/probe.bin"]
    url = "djarchive://ds/1/sessions/raw/probe.bin"
    with fsspec.open(f"simplecache::{url}", simplecache={"cache_storage": str(tmp_path / "whole")}) as handle:
        assert handle.read() == probe  # fetched by get_file: the download engine, verified
    with fsspec.open(f"blockcache::{url}", blockcache={"cache_storage": str(tmp_path / "blocks")}) as handle:
        handle.seek(100_000)
        assert handle.read(10) == probe[100_000:100_010]
    del handle
    gc.collect()  # here, under this test's filters


def test_get_waits_for_another_download_into_the_same_folder(archive, tree, tmp_path):
    import threading

    from djarchive_client.localcopy import LocalCopy

    fs = fsspec.filesystem("djarchive")
    other = LocalCopy(tmp_path / "t", create=True)
    other.lock()  # another download writes there
    done = threading.Event()
    thread = threading.Thread(
        target=lambda: (fs.get_file("ds/1/table.csv", str(tmp_path / "t" / "table.csv")), done.set())
    )
    thread.start()
    assert not done.wait(1.0)
    other.unlock()
    other.close()
    thread.join(30)
    assert done.is_set()
    assert (tmp_path / "t" / "table.csv").read_bytes() == CSV


def test_not_found_and_permission_errors_are_what_fsspec_users_expect(archive, tree, monkeypatch):
    fs = fsspec.filesystem("djarchive")
    for path in (
        "nowhere",
        "ds/9",
        "ds/1/nothing.csv",
        "ds/1/sessions/raw/probe.bin/x",
        ".djarchive/x",
        "ds/v 1",
    ):
        with pytest.raises(FileNotFoundError):
            fs.info(f"djarchive://{path}")
        with pytest.raises(FileNotFoundError):
            fs.open(path)
    with pytest.raises(FileNotFoundError):
        fs.ls("ds/1/nothing")
    with pytest.raises(FileNotFoundError):
        fs.cat("ds/1/nothing.csv")
    with pytest.raises(IsADirectoryError):
        fs.open("ds/1/sessions")
    mapper = fs.get_mapper("ds/1")
    assert mapper["sessions/a.csv"] == tree["sessions/a.csv"]
    assert "nothing" not in mapper
    with pytest.raises(KeyError):
        mapper["nothing"]

    def denied(self, key, limit):
        raise PermissionDeniedError(f"reading {key}: access denied")

    monkeypatch.setattr(Store, "read", denied)
    with pytest.raises(PermissionError, match="access denied"):
        fsspec.filesystem("djarchive", skip_instance_cache=True).ls("ds/2")


def test_it_is_read_only(archive, tree):
    fs = fsspec.filesystem("djarchive")
    writes = [
        lambda: fs.open("ds/1/new.csv", "wb"),
        lambda: fs.open("ds/1/table.csv", "ab"),
        lambda: fsspec.open("djarchive://ds/1/new.csv", "w").open(),
        lambda: fs.pipe_file("ds/1/new.csv", b"x"),
        lambda: fs.pipe({"ds/1/new.csv": b"x"}),
        lambda: fs.put_file(__file__, "ds/1/new.py"),
        lambda: fs.put(__file__, "ds/1/"),
        lambda: fs.touch("ds/1/new.csv"),
        lambda: fs.rm("ds/1/table.csv"),
        lambda: fs.rm_file("ds/1/table.csv"),
        lambda: fs.rm("ds/1", recursive=True),
        lambda: fs.mkdir("ds/1/new"),
        lambda: fs.makedirs("ds/1/new", exist_ok=True),
        lambda: fs.rmdir("ds/1/sessions"),
        lambda: fs.cp_file("ds/1/table.csv", "ds/1/copy.csv"),
        lambda: fs.copy("ds/1/table.csv", "ds/1/copy.csv"),
        lambda: fs.mv("ds/1/table.csv", "ds/1/moved.csv"),
    ]
    for write in writes:
        with pytest.raises(NotImplementedError, match="read-only"):
            write()
    assert fs.cat_file("ds/1/table.csv") == CSV
    assert archive.keys("ds/1/") == sorted(
        [f"ds/1/{subpath}" for subpath in tree] + ["ds/1/djarchive-manifest.csv"]
    )


def test_settings_from_storage_options_and_no_secret_in_reprs_or_pickles(archive, tree, monkeypatch):
    access, secret = CLIENT_ACCESS_KEY, CLIENT_SECRET_KEY  # keys the test server accepts
    for name in list(os.environ):
        if name.startswith("DJARCHIVE_CLIENT_"):
            monkeypatch.delenv(name)
    fs = DJArchiveFileSystem(
        endpoint=archive.server.url, bucket=archive.bucket, access_key=access, secret_key=secret
    )
    assert fs.ls("ds", detail=False) == ["ds/1", "ds/2"]
    with fs.open("ds/1/table.csv") as handle:
        shown = [repr(fs), str(fs), repr(handle)]
    clone = pickle.loads(pickle.dumps(fs))
    assert clone.cat_file("ds/2/table.csv") == CSV
    shown += [repr(clone), str(clone)]
    assert all(secret not in text and access not in text for text in shown), shown
    assert "credentials=<redacted>" in repr(fs)
    assert archive.bucket in repr(fs)
    with fsspec.open(
        "djarchive://ds/1/table.csv", endpoint=archive.server.url, bucket=archive.bucket
    ) as handle:
        assert handle.read() == CSV
    anonymous = fsspec.filesystem("djarchive", endpoint=archive.server.url, bucket=archive.bucket)
    assert "anonymous" in repr(anonymous)
    with pytest.raises(NotFoundError):
        DJArchiveFileSystem(endpoint=archive.server.url, bucket="no-such-bucket").ls("")


def test_importing_djarchive_client_imports_no_fsspec_or_dask():
    import subprocess
    import sys

    code = (
        "import sys, djarchive_client.cli, djarchive_client.archive, djarchive_client.download;"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('fsspec', 'dask', 'distributed')))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
