"""fsspec's own abstract tests of ``get`` and ``open`` against ``djarchive://`` (issue 24): the
contract every fsspec filesystem keeps, above all that ``get`` creates exactly the files it is
asked for in the destination (no ``.djarchive/`` state folder there or above it).

djarchive:// is read-only: its files are published revisions, listed from their manifests. The
abstract tests build their scenarios with write calls (``touch``, ``makedirs``, ``pipe``, ``rm``,
``open(..., "wb")``). Here the scenario fixtures run fsspec's own scenario builders against a
recorder and publish each scenario as one revision on the test server (moto), retracting it
after the test; the few tests that write in their own body (``test_get_directory_recursive``,
``test_open_exclusive``) get the same through the filesystem under test, a subclass of
:class:`DJArchiveFileSystem` whose write calls publish or retract revisions and whose reads are
djarchive's own, untouched. No test is skipped: the scenarios hold no empty folder (a manifest
cannot list one, and none of these tests needs one).
"""

from __future__ import annotations

import io
import posixpath
from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("fsspec")

from fsspec.tests.abstract import AbstractFixtures, AbstractGetTests, AbstractOpenTests

from djarchive_client.filesystem import DJArchiveFileSystem

DATASET, REVISION = "scenarios", "1"


class Recorder:
    """Stands in for a filesystem while one of fsspec's scenario builders runs: it records the
    files the builder creates (folders come with their files)."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}

    def touch(self, path: str, **kwargs: Any) -> None:
        self.files[path] = b""

    def pipe(self, path: str, value: bytes, **kwargs: Any) -> None:
        self.files[path] = value

    def makedirs(self, path: str, exist_ok: bool = False) -> None:
        pass  # a folder exists once a file is in it

    mkdir = makedirs


class PublishingFileSystem(DJArchiveFileSystem):
    """djarchive:// whose write calls publish the revisions they write into (and retract the
    ones emptied), for the abstract tests' scenarios; every read goes through djarchive's code."""

    def __init__(self, *args: Any, archive: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.archive = archive
        self.published: dict[tuple[str, str], dict[str, bytes]] = {}

    def publish(self, files: dict[str, bytes]) -> None:
        """Add ``files`` (full djarchive:// paths) to their revisions and publish those again."""
        touched = set()
        for path, data in files.items():
            dataset, revision, subpath = self._strip_protocol(path).split("/", 2)
            self.published.setdefault((dataset, revision), {})[subpath] = data
            touched.add((dataset, revision))
        for dataset, revision in touched:
            self._republish(dataset, revision)

    def _republish(self, dataset: str, revision: str) -> None:
        for key in self.archive.keys(f"{dataset}/{revision}/"):
            self.archive.remove(key)
        files = self.published.get((dataset, revision))
        if files:
            self.archive.publish(dataset, revision, files)
        self.invalidate_cache()

    def touch(self, path: str, truncate: bool = True, **kwargs: Any) -> None:
        self.publish({path: b""})

    def pipe_file(self, path: str, value: bytes, mode: str = "overwrite", **kwargs: Any) -> None:
        self.publish({path: value})

    def mkdir(self, path: str, create_parents: bool = True, **kwargs: Any) -> None:
        pass  # a folder exists once a file is in it

    def makedirs(self, path: str, exist_ok: bool = False) -> None:
        pass

    def rm(self, path: Any, recursive: bool = False, maxdepth: int | None = None) -> None:
        for item in path if isinstance(path, list) else [path]:
            dataset, revision, subpath = self._locate(item)
            files = self.published.get((dataset, revision), {})
            for name in [name for name in files if name == subpath or name.startswith(subpath + "/")]:
                del files[name]
            self._republish(dataset, revision)

    def _open(self, path: str, mode: str = "rb", **kwargs: Any) -> Any:
        if mode == "rb":
            return super()._open(path, mode, **kwargs)
        if "x" in mode and self.exists(path):
            raise FileExistsError(path)
        return _Publishing(self, path)


class _Publishing(io.BytesIO):
    """A file opened for writing: published when closed."""

    def __init__(self, fs: PublishingFileSystem, path: str):
        super().__init__()
        self.fs, self.path = fs, path

    def close(self) -> None:
        if not self.closed:
            self.fs.publish({self.path: self.getvalue()})
        super().close()


class TestDJArchiveGetAndOpen(AbstractFixtures, AbstractGetTests, AbstractOpenTests):
    """fsspec's AbstractGetTests and AbstractOpenTests, every one of them, on djarchive://."""

    @pytest.fixture
    def fs(self, archive) -> PublishingFileSystem:
        return PublishingFileSystem(
            endpoint=archive.server.url, bucket=archive.bucket, archive=archive, skip_instance_cache=True
        )

    @pytest.fixture
    def fs_join(self):
        return posixpath.join

    @pytest.fixture
    def fs_path(self) -> str:
        return f"{DATASET}/{REVISION}"

    def _published(self, fs: PublishingFileSystem, build: Any, fs_join: Any, fs_path: str) -> Iterator[str]:
        """Publish the scenario ``build`` (one of fsspec's builders) as one revision; retract it after."""
        recorder = Recorder()
        source = build(recorder, fs_join, fs_path)
        fs.publish(recorder.files)
        yield source
        fs.rm(source, recursive=True)

    @pytest.fixture
    def fs_bulk_operations_scenario_0(self, fs, fs_join, fs_path):
        yield from self._published(fs, self._bulk_operations_scenario_0, fs_join, fs_path)

    @pytest.fixture
    def fs_glob_edge_cases_files(self, fs, fs_join, fs_path):
        yield from self._published(fs, self._glob_edge_cases_files, fs_join, fs_path)

    @pytest.fixture
    def fs_dir_and_file_with_same_name_prefix(self, fs, fs_join, fs_path):
        yield from self._published(fs, self._dir_and_file_with_same_name_prefix, fs_join, fs_path)

    @pytest.fixture
    def fs_10_files_with_hashed_names(self, fs, fs_join, fs_path):
        yield from self._published(fs, self._10_files_with_hashed_names, fs_join, fs_path)
