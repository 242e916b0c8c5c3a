"""The manifest format: byte compatibility, round trips and every rejection."""

from __future__ import annotations

import csv
import io

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from djarchive_common.errors import ManifestError
from djarchive_common.layout import subpath_problem
from djarchive_common.manifest import (
    Entry,
    Manifest,
    diff_manifests,
    parse_manifest,
    path_identity,
    read_manifest,
    write_manifest,
)
from tests.helpers import manifest_bytes, sha256

HASH = "0123456789abcdef" * 4


def line(size: str, digest: str, subpath: str) -> bytes:
    return f'"{size}","{digest}","{subpath}"\n'.encode()


def test_example_line_is_byte_exact():
    data = b"\0" * 524288
    manifest = Manifest([Entry("sub/dir/dir.dat", 524288, sha256(data))])
    assert manifest.to_bytes() == f'"524288","{sha256(data)}","sub/dir/dir.dat"\n'.encode()


def test_written_sorted_without_header_and_with_newlines(tmp_path):
    entries = [Entry("b", 1, HASH), Entry("a/z", 2, HASH), Entry("a b", 0, HASH)]
    path = write_manifest(tmp_path / "djarchive-manifest.csv", entries)
    raw = path.read_bytes()
    assert raw.split(b"\n")[:-1] == [
        line("0", HASH, "a b")[:-1],
        line("2", HASH, "a/z")[:-1],
        line("1", HASH, "b")[:-1],
    ]
    assert b"\r" not in raw
    assert [entry.subpath for entry in read_manifest(path)] == ["a b", "a/z", "b"]
    assert not list(tmp_path.glob(".*tmp"))


def test_reads_what_the_original_tool_wrote():
    # The original wrote '"size","sha","subpath"\n' lines in os.walk order, unsorted.
    original = line("5", HASH, "sub/sub.dat") + line("3", HASH, "root.dat")
    manifest = parse_manifest(original)
    assert [(e.subpath, e.size) for e in manifest] == [("root.dat", 3), ("sub/sub.dat", 5)]


def original_read(data: bytes) -> dict[str, tuple[int, str]]:
    """The original tool's manifest reader, re-implemented: split each line at commas and drop
    the double quotes."""
    entries = {}
    for raw in data.splitlines():
        size, sha, subpath = (field.replace('"', "") for field in raw.decode().strip().split(","))
        assert subpath not in entries
        entries[subpath] = (int(size), sha)
    return entries


def original_write(entries: list[tuple[str, int, str]]) -> bytes:
    """The original tool's manifest writer, re-implemented: one formatted line per file, in the
    order the folder walk found them."""
    return b"".join(f'"{size}","{sha}","{subpath}"\n'.encode() for subpath, size, sha in entries)


def test_compatible_with_the_original_both_ways():
    walked = [("sub/dir/dir.dat", 524288, HASH), ("root.dat", 1000, HASH), ("names/ünï cödé.bin", 0, HASH)]
    written_by_original = original_write(walked)
    ours = parse_manifest(written_by_original)
    assert [(e.subpath, e.size, e.sha256) for e in ours] == sorted(walked)  # we read theirs ...
    assert original_read(ours.to_bytes()) == {p: (n, h) for p, n, h in walked}  # ... and they read ours
    # the same lines, in our (sorted) order rather than the walk's
    assert sorted(ours.to_bytes().splitlines()) == sorted(written_by_original.splitlines())


def test_reads_crlf_and_bom():
    manifest = parse_manifest(b"\xef\xbb\xbf" + line("1", HASH, "a").replace(b"\n", b"\r\n"))
    assert manifest[0] == Entry("a", 1, HASH)


def test_awkward_names_round_trip():
    names = ["with, comma", 'with "quotes"', "with space", "ünïcødé/日本語.dat", "a'b", "x;=cmd()", "+SUM(1)"]
    manifest = Manifest([Entry(name, index, HASH) for index, name in enumerate(names)])
    assert parse_manifest(manifest.to_bytes()) == manifest


def test_matches_independent_writer():
    files = {"a b/c,d.bin": b"x", 'q"uote': b"", "z": b"zz"}
    manifest = parse_manifest(manifest_bytes(files))
    assert manifest.to_bytes() == manifest_bytes(files)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (line("1", HASH, "/etc/passwd"), "line 1: absolute path"),
        (line("1", HASH, "../escape"), "line 1: '..' path component"),
        (line("1", HASH, "a/../../b"), "'..' path component"),
        (line("1", HASH, "./a"), "'.' path component"),
        (line("1", HASH, "a//b"), "empty path component"),
        (line("1", HASH, "a/"), "empty path component"),
        (line("1", HASH, ""), "empty path"),
        (line("1", HASH, "a\\b"), "backslash"),
        (line("1", HASH, "a\x00b"), "control character"),
        (line("1", HASH, "a\x1bb"), "control character"),
        (line("1", HASH, "a\x7fb"), "control character"),
        (b'"1","' + HASH.encode() + b'","a\nb"\n', "control character"),
        (line("1", HASH, "a") + line("2", HASH, "a"), "line 2: duplicate path 'a' (first on line 1)"),
        (line("-1", HASH, "a"), "size '-1' is not a non-negative integer"),
        (line("1.5", HASH, "a"), "size '1.5'"),
        (line("", HASH, "a"), "size ''"),
        (line(" 1", HASH, "a"), "size ' 1'"),
        (line("1e3", HASH, "a"), "size '1e3'"),
        (line("1", HASH.upper(), "a"), "not 64 lowercase hex digits"),
        (line("1", HASH[:-1], "a"), "not 64 lowercase hex digits"),
        (line("1", HASH + "0", "a"), "not 64 lowercase hex digits"),
        (line("1", "g" * 64, "a"), "not 64 lowercase hex digits"),
        (b'"1","' + HASH.encode() + b'"\n', "expected 3 fields"),
        (line("1", HASH, "a")[:-1] + b',"extra"\n', "expected 3 fields"),
        (line("1", HASH, "ok") + b"\n", "line 2: expected 3 fields"),
        (b'"1","' + HASH.encode() + b'","unterminated\n', "not valid CSV"),
        (b'"1","' + HASH.encode() + b'","a"b"\n', "not valid CSV"),
        (line("1", HASH, "ok") + b'"1","' + HASH.encode() + b'","\xff\xfe"\n', "line 2: not valid UTF-8"),
        (
            line("1", HASH, "djarchive-manifest.csv"),
            "djarchive-manifest.csv is reserved for djarchive's own use",
        ),
        (line("1", HASH, "djarchive-manifest.sig"), "reserved for djarchive's own use"),
        (line("1", HASH, ".djarchive/lock"), ".djarchive is reserved"),
        (line("1", HASH, ".DJArchive"), ".djarchive is reserved"),
        (line(str(5 * 1024**4 + 1), HASH, "huge"), "larger than the largest object S3 can hold (5 TiB)"),
        (line("1", HASH, "a") + line("1", HASH, "A"), "line 2: 'A' and 'a' (line 1) name the same file"),
        (line("1", HASH, "caf\u00e9") + line("1", HASH, "cafe\u0301"), "name the same file"),
        (line("1", HASH, "Dir/x") + line("1", HASH, "dir"), "'dir' (line 2) is both a file and a folder"),
        (line("1", HASH, "a\u200bb"), "invisible or direction-changing character U+200B"),
        (line("1", HASH, "evil\u202egpj.exe"), "U+202E"),
        (line("1", HASH, "a\u2029b"), "U+2029"),
        (line("1", HASH, "\ufeffa"), "U+FEFF"),
        (line("1", HASH, "a") + line("1", HASH, "a/b"), "line 2: 'a' (line 1) is both a file and a folder"),
        (line("1", HASH, "x" * 300), "longer than 255 bytes"),
        (line("1", HASH, "/".join(["d" * 200] * 6)), "longer than 1024 bytes"),
        (b'"1","' + HASH.encode() + b'","' + b"a" * 200_000 + b'"\n', "line 1"),
    ],
)
def test_rejections_name_the_line_and_reason(data, message):
    with pytest.raises(ManifestError, match="invalid manifest") as caught:
        parse_manifest(data, source="ds/000/djarchive-manifest.csv")
    assert message in str(caught.value)
    assert "ds/000/djarchive-manifest.csv" in str(caught.value)


def test_manifest_error_is_a_value_error():
    with pytest.raises(ValueError, match="absolute path"):
        parse_manifest(line("1", HASH, "/a"))


def test_constructed_manifest_is_validated_too():
    with pytest.raises(ManifestError, match="duplicate path"):
        Manifest([Entry("a", 1, HASH), Entry("a", 1, HASH)])
    with pytest.raises(ManifestError, match="size"):
        Manifest([Entry("a", -1, HASH)])


def test_sequence_behaviour():
    manifest = Manifest([Entry("b", 2, HASH), Entry("a", 1, HASH)])
    assert len(manifest) == 2
    assert manifest[0].subpath == "a"
    assert "b" in manifest
    assert "c" not in manifest
    assert manifest.get("b") == Entry("b", 2, HASH)
    assert manifest.total_size == 3
    assert repr(manifest) == "<Manifest: 2 files, 3 bytes>"


def test_digests_are_read_by_index_without_slicing_the_packing():
    from djarchive_common.manifest import sha256_at, sha256s

    digests = [f"{number:064x}" for number in range(5)]
    manifest = Manifest(Entry(f"f{number}", number, digest) for number, digest in enumerate(digests))
    assert [manifest.sha256_at(index) for index in range(5)] == digests
    assert manifest.sha256s(1, 3) == digests[1:3]
    assert manifest.sha256s() == digests
    assert manifest.sha256s(4, 99) == digests[4:]
    packed = manifest.columns[2]
    assert [sha256_at(packed, index) for index in range(5)] == digests == sha256s(packed)
    assert list(manifest) == [Entry(f"f{number}", number, digest) for number, digest in enumerate(digests)]


def _digest(number: int) -> str:
    return f"{number:064x}"


def test_one_comparison_of_two_manifests_path_by_path_and_by_content():
    old = Manifest(
        [
            Entry("same", 1, _digest(1)),
            Entry("edited", 2, _digest(2)),
            Entry("resized", 3, _digest(3)),  # same digest, other size: not the same file
            Entry("gone", 4, _digest(4)),
            Entry("from", 5, _digest(5)),
            Entry("twin/a", 6, _digest(6)),  # content held twice; the last holder stays
            Entry("twin/b", 6, _digest(6)),
        ]
    )
    new = Manifest(
        [
            Entry("same", 1, _digest(1)),
            Entry("edited", 20, _digest(20)),
            Entry("resized", 30, _digest(3)),
            Entry("to", 5, _digest(5)),
            Entry("copy", 6, _digest(6)),
            Entry("copy-of-edited", 2, _digest(2)),  # content of a path that changed: no move
            Entry("fresh", 7, _digest(7)),
            Entry("twin/b", 6, _digest(6)),
        ]
    )
    changes = diff_manifests(old, new)
    assert [entry.subpath for entry in changes.added] == ["copy", "copy-of-edited", "fresh", "to"]
    assert [entry.subpath for entry in changes.removed] == ["from", "gone", "twin/a"]
    assert [(before.subpath, before.size, after.size) for before, after in changes.changed] == [
        ("edited", 2, 20),
        ("resized", 3, 30),
    ]
    assert changes.unchanged == 2
    assert changes.moved == [(old.get("from"), new.get("to"))]
    assert changes.new_content_bytes == 20 + 7  # edited and fresh: no other content is new
    assert repr(changes) == "<ManifestChanges: 4 added, 3 removed, 2 changed, 1 moved, 2 unchanged>"
    nothing = diff_manifests(new, new)
    assert (len(nothing.added), len(nothing.removed), nothing.changed, nothing.moved) == (0, 0, [], [])
    assert (nothing.unchanged, nothing.new_content_bytes) == (len(new), 0)


# -- property-based ---------------------------------------------------------------------

component = st.text(
    alphabet=st.characters(blacklist_categories=("Cc", "Cs"), blacklist_characters="/\\"),
    min_size=1,
    max_size=12,
).filter(lambda part: part not in (".", ".."))
subpaths = (
    st.lists(component, min_size=1, max_size=4)
    .map("/".join)
    .filter(lambda path: subpath_problem(path) is None)
)
entries = st.lists(
    st.tuples(
        subpaths,
        st.integers(min_value=0, max_value=5 * 1024**4),
        st.from_regex(r"[0-9a-f]{64}", fullmatch=True),
    ),
    max_size=20,
    unique_by=lambda item: path_identity(item[0]),  # one file on case-insensitive systems: refused
)


def _no_file_folder_clash(items):
    names = {path_identity(item[0]) for item in items}
    return not any(
        "/".join(path_identity(item[0]).split("/")[:depth]) in names
        for item in items
        for depth in range(1, item[0].count("/") + 1)
    )


@settings(suppress_health_check=[HealthCheck.too_slow])  # generation is slow on a loaded machine
@given(entries.filter(_no_file_folder_clash))
def test_round_trip_property(items):
    manifest = Manifest(Entry(*item) for item in items)
    data = manifest.to_bytes()
    assert parse_manifest(data) == manifest
    rows = list(csv.reader(io.StringIO(data.decode(), newline="")))
    assert all(len(row) == 3 for row in rows)
    assert [row[2] for row in rows] == sorted(item[0] for item in items)


@given(st.binary(max_size=400))
def test_parser_never_crashes_on_garbage(data):
    try:
        manifest = parse_manifest(data)
    except ManifestError:
        return
    for entry in manifest:
        assert subpath_problem(entry.subpath) is None


@pytest.mark.parametrize(
    "data",
    [
        line("1", HASH, "a") + line("2", HASH, "b"),  # canonical: its own bytes
        line("2", HASH, "b") + line("1", HASH, "a"),  # unsorted
        (line("1", HASH, "a") + line("2", HASH, "b")).replace(b"\n", b"\r\n"),
        b"\xef\xbb\xbf" + line("1", HASH, "a"),
        line("01", HASH, "a"),  # a leading zero: written back without it
        line("1", HASH, "a") + line("007", HASH, "b"),  # one after the first line
        line("0", HASH, "a") + line("1", "0" + HASH[1:], "b"),  # zero sizes and digests are fine
        b"1," + HASH.encode() + b",a\n",  # unquoted
    ],
)
def test_the_sha256_of_a_manifest_is_that_of_the_bytes_it_writes(data):
    manifest = parse_manifest(data)
    assert manifest.sha256 == sha256(manifest.to_bytes())


def many_lines(count: int) -> list[bytes]:
    """Plain sorted lines, about 100 bytes each: 20,000 of them span two of the parser's chunks."""
    return [line(str(index), HASH, f"sub-{index // 1000:02}/file-{index:06}.bin") for index in range(count)]


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ("../escape", "'..' path component"),
        (".djarchive/lock", ".djarchive is reserved"),
        ("djarchive-manifest.csv", "reserved for djarchive's own use"),
        ("a\\b", "backslash"),
        ("x" * 300, "longer than 255 bytes"),
        ("a\u200bb", "U+200B"),
    ],
)
def test_a_bad_line_among_many_plain_ones_is_named_by_its_line(bad, message):
    lines = many_lines(20_000)
    lines[15_000] = line("1", HASH, bad)
    with pytest.raises(ManifestError, match="line 15001: ") as caught:
        parse_manifest(b"".join(lines))
    assert message in str(caught.value)
    lines[15_000] = line(str(5 * 1024**4 + 1), HASH, "huge")
    with pytest.raises(ManifestError, match=r"line 15001: size .* larger than"):
        parse_manifest(b"".join(lines))


def test_plain_and_other_lines_mixed_read_as_the_csv_module_reads_them():
    lines = many_lines(20_000)
    lines[3] = line("7", HASH, 'sub-00/with a ""quote""')  # quoted: read line by line
    lines[12_000] = line("8", HASH, "sub-12/caf\u00e9")  # not ASCII
    lines[-1] = lines[-1][:-1]  # no newline at the end
    data = b"".join(lines)
    rows = list(csv.reader(io.StringIO(data.decode(), newline="")))
    expected = sorted(
        (Entry(path, int(size), digest) for size, digest, path in rows), key=lambda entry: entry.subpath
    )
    assert list(parse_manifest(data)) == expected
    assert parse_manifest(data).get('sub-00/with a "quote"') == Entry('sub-00/with a "quote"', 7, HASH)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.lists(
            st.sampled_from(["a", "A", "b", "a-b", "e\u0301", "\u00e9", "\u00c9"]), min_size=1, max_size=3
        ).map("/".join),
        max_size=8,
    )
)
def test_paths_clash_exactly_when_two_name_one_file_or_a_file_is_a_folder(subpaths):
    ids = [path_identity(path) for path in subpaths]
    expected = any(
        i != j and (ids[i] == ids[j] or ids[j].startswith(ids[i] + "/"))
        for i in range(len(ids))
        for j in range(len(ids))
    )
    data = b"".join(line("1", HASH, path) for path in subpaths)
    if expected:
        with pytest.raises(ManifestError, match=r"duplicate|same file|both a file and a folder"):
            parse_manifest(data)
    else:
        assert sorted(e.subpath for e in parse_manifest(data)) == sorted(subpaths)


_PIECES = st.sampled_from(
    ['"', ",", '","', '"\n"', "\n", "\r", "/", ".", "..", "a", "B", " ", "é", "\\", "\t"]
)
_FIELD = st.lists(_PIECES, max_size=5).map("".join)


def _field(good: list[str], bad: list[str]) -> st.SearchStrategy[str]:
    """Mostly good values, sometimes bad ones or garbage."""
    choices = [st.sampled_from(good)] * 8 + [st.sampled_from(bad), _FIELD]
    return st.sampled_from(choices).flatmap(lambda choice: choice)


_GOOD_LINE = st.tuples(
    _field(["0", "1", "12345", "007"], ["", " 1", "1" * 21, str(5 * 1024**4 + 1)]),
    _field([HASH, "f" * 64], [HASH.upper(), HASH[:-1], "g" * 64]),
    _field(
        ["a", "b/c", "d e/f,g", "x" * 255, "...", "a/.b"],
        ["x" * 256, ".djarchive/x", "djarchive-manifest.csv", "a/./b", "../a", "a//b", "/a", "a/"],
    ),
).map(lambda fields: line(*fields).decode())
_LINE = st.sampled_from([_GOOD_LINE] * 9 + [_FIELD]).flatmap(lambda choice: choice)


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_LINE, min_size=1, max_size=6).map("".join))
def test_the_bulk_reader_takes_only_lines_the_line_reader_reads_alike(text):
    """The fast path for chunks of plain lines may refuse anything; what it takes, the careful
    line-by-line reader must read to the same fields."""
    from array import array

    from djarchive_common.manifest.parse import chunk_by_line, plain_chunk

    data = text.encode()
    bulk: tuple[list[str], array[int], bytearray] = ([], array("Q"), bytearray())
    if plain_chunk(data, *bulk):
        careful: tuple[list[str], array[int], bytearray] = ([], array("Q"), bytearray())
        assert chunk_by_line(data, 0, len(data), 1, "m", *careful)
        assert bulk == careful
    else:
        assert bulk == ([], array("Q"), bytearray())  # nothing half-added


@pytest.mark.parametrize(
    "bad",
    [
        *(line(size, HASH, "p") for size in ["", " 1", "1" * 21, "0" * 20 + "1", "+1", "1_0"]),
        *(line("1", digest, "p") for digest in [HASH.upper(), HASH[:-1], HASH + "0", "g" * 64, " " * 64]),
        *(
            line("1", HASH, path)
            for path in [
                *["x" * 256, "a/" + "x" * 256, "/".join(["d" * 200] * 6), ".djarchive/x", ".DJArchive"],
                *["djarchive-manifest.csv", "a/./b", "a/../b", "../a", "./a", "a/.", "a/..", ".", ".."],
                *[
                    "a//b",
                    "/a",
                    "a/",
                    "",
                    'a"b',
                    'a""b',
                    "a\\b",
                    "a\tb",
                    "a\rb",
                    "a\nb",
                    "caf\u00e9",
                    "a\x7fb",
                ],
            ]
        ),
        f'"1","{HASH}"\n'.encode(),  # two fields
        f'"1","{HASH}","p","q"\n'.encode(),  # four
        f"1,{HASH},p\n".encode(),  # unquoted
        f'"1","{HASH}","a","5"\n"{HASH}","p"\n'.encode(),  # four fields, then two: six in all
        line("1", HASH[:-1], "p") + line("1", HASH + "0", "q"),  # 63 and 65 digits: 128 in all
        f'"1","{HASH}","p"\r\n'.encode(),
        f'"1","{HASH}","p"\n"\n'.encode(),
        f'"1","{HASH}",p"\n'.encode(),
        f'"1","{HASH}","p\n'.encode(),
    ],
)
def test_the_bulk_reader_refuses_a_chunk_with_any_line_not_plain(bad):
    from array import array

    from djarchive_common.manifest.parse import plain_chunk

    lines = many_lines(50)
    lines[25] = bad
    fields: tuple[list[str], array[int], bytearray] = ([], array("Q"), bytearray())
    assert not plain_chunk(b"".join(lines), *fields)
    assert fields == ([], array("Q"), bytearray())
    assert plain_chunk(b"".join(many_lines(50)), *fields)  # the same chunk without it is taken


def test_the_bulk_reader_refuses_a_chunk_whose_first_or_last_line_is_cut():
    from array import array

    from djarchive_common.manifest.parse import plain_chunk

    fields: tuple[list[str], array[int], bytearray] = ([], array("Q"), bytearray())
    assert not plain_chunk(b"".join(many_lines(3))[:-1], *fields)
    assert not plain_chunk(f'12","{HASH}","p"\n'.encode(), *fields)  # nor one whose first has no start
    assert fields == ([], array("Q"), bytearray())


_small_entries = st.dictionaries(
    st.sampled_from(["a", "b", "c", "d/e", "d/f", "g"]),
    st.tuples(st.integers(min_value=0, max_value=3), st.integers(min_value=0, max_value=4)),
    max_size=6,
).map(lambda found: Manifest(Entry(path, size, _digest(content)) for path, (size, content) in found.items()))


@settings(max_examples=300, deadline=None)
@given(_small_entries, _small_entries)
def test_the_comparison_accounts_for_every_path_once(old, new):
    changes = diff_manifests(old, new)
    changed = {before.subpath for before, _ in changes.changed}
    assert {entry.subpath for entry in changes.added} == set(new.subpaths) - set(old.subpaths)
    assert {entry.subpath for entry in changes.removed} == set(old.subpaths) - set(new.subpaths)
    assert changed == {
        path for path in set(old.subpaths) & set(new.subpaths) if old.get(path) != new.get(path)
    }
    assert changes.unchanged == len(set(old.subpaths) & set(new.subpaths)) - len(changed)
    for before, after in changes.moved:
        assert before in changes.removed
        assert after in changes.added
        assert before.sha256 == after.sha256
    held = {entry.sha256 for entry in old}
    fresh = [*changes.added, *(after for _, after in changes.changed)]
    assert changes.new_content_bytes == sum(entry.size for entry in fresh if entry.sha256 not in held)
