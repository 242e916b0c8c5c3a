"""Property-based fuzzing of the manifest parser and the path and name checks (hypothesis).

The oracles below are written from the specification (DESIGN.md §2), independently of the
code: a subpath is safe when it is a non-empty relative posix path with no empty, '.' or '..'
component, no backslash, no control character and within the key-length limits; a name
matches ``[A-Za-z0-9][A-Za-z0-9._-]{0,127}``. Examples are derandomized: every run tries the
same inputs.
"""

from __future__ import annotations

import posixpath
import re
import tempfile
import unicodedata
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from djarchive_client.localcopy import LocalCopy
from djarchive_common.errors import InvalidNameError, LocalPathError, ManifestError
from djarchive_common.layout import MANIFEST_NAME, check_name, check_subpath, is_valid_name
from djarchive_common.manifest import Entry, Manifest, parse_manifest
from tests.helpers import manifest_bytes

FUZZ = settings(
    max_examples=400,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
HEX = re.compile(r"[0-9a-f]{64}")


RESERVED = {
    MANIFEST_NAME,
    "djarchive-manifest.sig",
    "djarchive-retraction.json",
    "djarchive-manifest.retracted.csv",
}


def identity(subpath: str) -> str:
    """What a case-insensitive, normalizing file system sees."""
    return unicodedata.normalize("NFC", unicodedata.normalize("NFC", subpath).casefold())


def safe_subpath(subpath: object) -> bool:
    """The specification's rule, written independently of djarchive_common.layout."""
    if not isinstance(subpath, str) or not subpath or subpath in RESERVED:
        return False
    if subpath.split("/")[0].casefold() == ".djarchive":
        return False
    if subpath.startswith("/") or "\\" in subpath:
        return False
    if any(unicodedata.category(char) in ("Cc", "Cs", "Cf", "Zl", "Zp") for char in subpath):
        return False
    if len(subpath.encode("utf-8")) > 1024:
        return False
    parts = subpath.split("/")
    if any(part in ("", ".", "..") or len(part.encode("utf-8")) > 255 for part in parts):
        return False
    root = "/fuzz-root"
    joined = posixpath.normpath(posixpath.join(root, subpath))
    return joined == f"{root}/{subpath}"


# -- building blocks -------------------------------------------------------------------------------

PIECES = [
    "a", "b c", "é", "日本", "..", ".", "", " ", "...", ".hidden", "\\", "\x00", "\x1b", "\n", "\r",
    "\u2028", "\u202e", "\ufeff", "\ud800", "x" * 255, "y" * 256, "é" * 128, MANIFEST_NAME, ".djarchive",
    '"', ",", "=cmd|' /C calc'!A0", "CON",
]  # fmt: skip
paths = st.lists(st.sampled_from(PIECES), min_size=1, max_size=6).map("/".join) | st.text(
    alphabet=st.characters(exclude_categories=()), max_size=40
)
CAREFUL = [
    "a",
    "b c",
    "é",
    "日本",
    "...",
    ".hidden",
    "=cmd|' /C calc'!A0",
    "CON",
    '"',
    ",",
    "x" * 255,
    "\u202e",
    "\ufeff",
]
careful_paths = st.lists(st.sampled_from(CAREFUL), min_size=1, max_size=4).map("/".join)
VALID = {
    "a.dat": b"1",
    "sub/b c.dat": b"22",
    'names/with space/ünïcödé, "quoted".bin': b"333",
    "=cmd|' /C calc'!A0": b"",
    "deep/" * 10 + "leaf": b"55555",
}
TOKENS = [
    b'"', b",", b"\n", b"\r", b"\r\n", b"/", b"..", b".", b"../", b"/..", b"//", b"\\", b"\x00", b"\xff",
    b"\xc3", b"\xed\xa0\x80", b" ", b'""', b"\t", b"0", b"9" * 25, b"-1", b"f", b"F", b"a" * 64,
    b"\xef\xbb\xbf", "\u2028".encode(), b"\x1b", b'","', b'"\n"', b"/etc/passwd", b"C:\\x",
]  # fmt: skip


@st.composite
def mutated_manifests(draw) -> bytes:
    """A valid manifest, then a few random edits: insert, delete, replace, duplicate lines."""
    chosen = draw(st.lists(st.sampled_from(sorted(VALID)), min_size=1, max_size=len(VALID), unique=True))
    data = bytearray(manifest_bytes({name: VALID[name] for name in chosen}))
    for _ in range(draw(st.integers(1, 6))):
        operation = draw(st.sampled_from(["insert", "delete", "replace", "duplicate", "byte"]))
        position = draw(st.integers(0, len(data)))
        if operation == "insert":
            data[position:position] = draw(st.sampled_from(TOKENS) | st.binary(max_size=4))
        elif operation == "delete":
            del data[position : position + draw(st.integers(1, 80))]
        elif operation == "replace":
            data[position : position + draw(st.integers(1, 10))] = draw(st.sampled_from(TOKENS))
        elif operation == "duplicate":
            lines = bytes(data).splitlines(keepends=True)
            if lines:
                picked = draw(st.sampled_from(lines))
                data[position:position] = picked
        elif data:
            index = min(position, len(data) - 1)
            data[index] = draw(st.integers(0, 255))
    return bytes(data)


# -- the manifest parser -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def target():
    with tempfile.TemporaryDirectory() as folder:
        yield LocalCopy(folder)


@FUZZ
@given(data=mutated_manifests())
def test_mutated_manifests_never_yield_an_unsafe_entry(target, data):
    try:
        manifest = parse_manifest(data, source="fuzz")
    except ManifestError as error:
        event("refused")
        message = str(error)
        assert message.startswith(("invalid manifest fuzz, line ", "invalid entry in fuzz")), message
        return
    event("accepted")
    seen = set()
    for entry in manifest:
        assert safe_subpath(entry.subpath), entry
        assert isinstance(entry.size, int)
        assert entry.size >= 0
        assert HEX.fullmatch(entry.sha256)
        assert entry.subpath not in seen
        seen.add(entry.subpath)
        try:
            destination = target.destination(entry.subpath)
        except LocalPathError:
            assert entry.subpath.split("/")[0] == ".djarchive"  # djarchive's own folder is refused later
        else:
            assert target.root in destination.parents
    for subpath in seen:  # no path is both a file and a folder
        assert not any(other.startswith(subpath + "/") for other in seen)
    assert parse_manifest(manifest.to_bytes()) == manifest  # what it writes, it reads back


BAD_SIZES = ["-1", "1.0", "", " 1", "0x1", "1e3", "\u0661", "123456789012345678901", "5497558138881"]
BAD_DIGESTS = ["A" * 64, "a" * 63, "a" * 65, "g" * 64, "", " " + "a" * 63]


@st.composite
def hostile_rows(draw) -> tuple[bytes, bool]:
    """CSV rows with hostile or awkward fields, quoted or not, and whether a careful reader must
    accept them (every field valid, no repeat, no file that is also a folder)."""
    rows, valid, seen = [], True, []
    for _ in range(draw(st.integers(1, 3))):
        bad = draw(st.sampled_from(["none", "none", "none", "size", "digest", "path"]))
        size = draw(st.sampled_from(BAD_SIZES if bad == "size" else ["0", "17", "5497558138880"]))
        digest = draw(st.sampled_from(BAD_DIGESTS if bad == "digest" else ["a" * 64, "0123456789abcdef" * 4]))
        subpath = draw(paths if bad == "path" else careful_paths)
        valid &= bad in ("none", "path") and safe_subpath(subpath) and subpath not in seen
        seen.append(subpath)
        fields = []
        for field in (size, digest, subpath):
            if (
                draw(st.booleans())
                or any(char in field for char in '",\r\n')
                or field != field.strip()
                or not field
            ):
                field = '"' + field.replace('"', '""') + '"'
            fields.append(field)
        rows.append(",".join(fields) + draw(st.sampled_from(["\n", "\r\n"])))
    folded = [identity(subpath) for subpath in seen]
    valid &= len(set(folded)) == len(folded)
    valid &= not any(other.startswith(subpath + "/") for subpath in folded for other in folded)
    return "".join(rows).encode("utf-8", "surrogatepass"), valid


@FUZZ
@given(case=hostile_rows())
def test_hostile_rows_are_refused_and_careful_ones_accepted(target, case):
    data, valid = case
    try:
        manifest = parse_manifest(data)
    except ManifestError:
        event("refused")
        assert not valid, data
        return
    event("accepted")
    assert valid, data
    assert all(safe_subpath(entry.subpath) for entry in manifest)
    assert all(
        target.root in target.destination(e.subpath).parents
        for e in manifest
        if not e.subpath.startswith(".djarchive/") and e.subpath != ".djarchive"
    )


@FUZZ
@given(data=st.binary(max_size=300))
def test_arbitrary_bytes_are_a_manifest_or_a_manifest_error(data):
    try:
        manifest = parse_manifest(data)
    except ManifestError:
        return
    assert all(safe_subpath(entry.subpath) for entry in manifest)


@settings(FUZZ, max_examples=200)
@given(
    entries=st.lists(
        st.tuples(
            paths.filter(safe_subpath),
            st.integers(0, 5 * 1024**4),
            st.text("0123456789abcdef", min_size=64, max_size=64),
        ),
        max_size=6,
        unique_by=lambda item: item[0],
    )
)
def test_every_valid_manifest_round_trips(entries):
    items = [Entry(*item) for item in entries]
    subpaths = {entry.subpath for entry in items}
    if any(other.startswith(subpath + "/") for subpath in subpaths for other in subpaths):
        with pytest.raises(ManifestError, match="both a file and a folder"):
            Manifest(items)
        return
    manifest = Manifest(items)
    data = manifest.to_bytes()
    assert parse_manifest(data) == manifest
    expected = "".join(
        f'"{e.size}","{e.sha256}","{e.subpath.replace(chr(34), chr(34) * 2)}"\n'
        for e in sorted(items, key=lambda e: e.subpath)
    )
    assert data == expected.encode("utf-8")  # the original tool's layout, byte for byte


# -- path and name checks --------------------------------------------------------------------------


@FUZZ
@given(subpath=paths)
def test_check_subpath_agrees_with_the_specification(subpath):
    if safe_subpath(subpath):
        assert check_subpath(subpath) == subpath
    else:
        with pytest.raises(InvalidNameError, match=r"^invalid path "):
            check_subpath(subpath)


@FUZZ
@given(
    value=st.text(alphabet=st.characters(exclude_categories=()), max_size=140)
    | st.sampled_from(
        ["..", ".", "a/b", "", "x" * 128, "x" * 129, ".hidden", "a b", "A-1_b.c", "0", "-x", "_x"]
    )
)
def test_check_name_agrees_with_the_specification(value):
    valid = NAME.fullmatch(value) is not None
    assert is_valid_name(value) is valid
    if valid:
        assert check_name(value) == value
        assert "/" not in value
        assert not value.startswith(".")
    else:
        with pytest.raises(InvalidNameError, match=r"^invalid dataset name "):
            check_name(value)
        with pytest.raises(InvalidNameError, match=r"^invalid revision name "):
            check_name(value, "revision")


@pytest.mark.parametrize("value", [None, 1, 1.5, b"abc", ["a"], ("a",), {"a": 1}, Path("a")])
def test_names_and_paths_of_other_types_are_refused(value):
    with pytest.raises(InvalidNameError):
        check_name(value)
    with pytest.raises(InvalidNameError):
        check_subpath(value)
