"""The djarchive demo: a local S3 archive, a curator publishes a dataset, a researcher downloads it.

Run it with ``tox -e demo`` (or ``python demo/demo.py`` where the packages and moto are
installed). It starts moto's S3 server on 127.0.0.1, generates a small but realistic
sample dataset, publishes it with the real ``djarchive-admin``, then lists, downloads,
verifies and re-downloads it with the real ``djarchive``, and stops the server.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DATASET = "workflow-demo"
REVISION = "v1"
BUCKET = "djarchive-demo"
ADMIN_KEY, ADMIN_SECRET = "demo-curator", "demo-curator-secret"
MiB = 1024 * 1024


def say(text: str) -> None:
    print(f"\n\033[1m== {text}\033[0m" if sys.stdout.isatty() else f"\n== {text}", flush=True)


def generate(root: Path, seed: int = 7) -> int:
    """A few recording sessions of fake ephys and imaging files; returns the total size."""
    rng = random.Random(seed)
    total = 0

    def write(path: Path, size: int) -> None:
        nonlocal total
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "wb") as handle:
            remaining = size
            while remaining:
                block = min(remaining, 4 * MiB)
                handle.write(rng.randbytes(block))
                remaining -= block
        total += size

    for session in (
        "subject1/session_2026-01-12",
        "subject1/session_2026-01-19",
        "subject2/session_2026-02-02",
    ):
        base = root / session
        (base / "session.json").parent.mkdir(parents=True, exist_ok=True)
        (base / "session.json").write_text(
            json.dumps({"session": session, "rig": "rig-3", "sampling_hz": 30000})
        )
        total += (base / "session.json").stat().st_size
        for probe in ("imec0", "imec1"):
            write(base / "ephys" / probe / "continuous.dat", rng.randint(3, 6) * MiB)
            write(base / "ephys" / probe / "spike_times.npy", rng.randint(20, 200) * 1024)
        for plane in range(3):
            write(base / "imaging" / f"plane{plane}" / "frames.tif", rng.randint(1, 3) * MiB)
    write(root / "subject2/session_2026-02-02/video/behavior camera.avi", 70 * MiB)  # one large file
    (root / "README.txt").write_text("Demo dataset: fake ephys (Neuropixels-like) and two-photon imaging.\n")
    (root / ".DS_Store").write_bytes(b"hidden files are not archived")
    return total + (root / "README.txt").stat().st_size


def start_server():
    """moto's S3 server on a free port, with a public-read bucket like the real archive."""
    from minio import Minio
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    minio = Minio(f"{host}:{port}", access_key=ADMIN_KEY, secret_key=ADMIN_SECRET, secure=False)
    minio.make_bucket(BUCKET)
    public_read = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"AWS": ["*"]},
                "Action": ["s3:GetObject", "s3:ListBucket"],
                "Resource": [f"arn:aws:s3:::{BUCKET}", f"arn:aws:s3:::{BUCKET}/*"],
            }
        ],
    }
    minio.set_bucket_policy(BUCKET, json.dumps(public_read))
    return server, f"http://{host}:{port}"


def show_environment(role: str, env: dict[str, str], base: dict[str, str]) -> None:
    """Print what the demo sets for a role as shell lines, so every command shown can be run again by
    hand (the key pair is the demo's own, valid only for its local server)."""
    print(f"# the {role}'s settings:")
    for name, value in env.items():
        if base.get(name) != value:
            print(f"export {name}={shlex.quote(value)}")


def parting_words(work: Path, *, kept: bool) -> str:
    """What is left once the demo ends, and how to keep it: the commands it showed can be run
    again by hand only while its folder and server are there."""
    if kept:
        return f"kept {work}"
    return (
        f"removed {work}; to run the commands above by hand, keep the folder and the server "
        "with: python3 -m tox -e demo -- --keep"
    )


def run(*argv: str, env: dict[str, str], cwd: Path) -> None:
    """Show a command, run it with the output going straight to the terminal, stop on failure."""
    print(f"$ {shlex.join(argv)}", flush=True)
    started = time.monotonic()
    result = subprocess.run(argv, env=env, cwd=cwd)
    if result.returncode != 0:
        raise SystemExit(f"demo failed: `{shlex.join(argv)}` exited with {result.returncode}")
    print(f"  ({time.monotonic() - started:.1f} s)", flush=True)


def revise(source: Path) -> None:
    """v2 of the sample: spike times fixed in one session, a video moved, a note added."""
    sessions = sorted(path for path in source.rglob("spike_times.npy"))
    sessions[0].write_bytes(sessions[0].read_bytes()[::-1])
    video = next(source.rglob("*.mp4"), None) or next(iter(sorted(source.rglob("*.tif"))))
    moved = video.parent / "moved" / video.name
    moved.parent.mkdir()
    video.rename(moved)
    (source / "CHANGES.txt").write_text("v2: spike times of one session re-sorted; video moved\n")
    (source / "djarchive-manifest.csv").unlink(missing_ok=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--keep",
        action="store_true",
        help="keep the working folder and the server: after the demo, run its commands by hand in another "
        "terminal (with the settings it printed, from the folder it names) until you press Ctrl-C",
    )
    args = parser.parse_args(argv)
    for tool in ("djarchive", "djarchive-admin"):
        if not shutil.which(tool):
            raise SystemExit(f"demo: `{tool}` is not on PATH; run the demo with `tox -e demo`")

    work = Path(tempfile.mkdtemp(prefix="djarchive-demo-"))
    say("Starting a local S3 archive (moto's S3 server)")
    server, url = start_server()
    print(f"endpoint {url}, bucket {BUCKET} (public read, like the DataJoint archive)")
    base_env = {k: v for k, v in os.environ.items() if not k.startswith(("DJARCHIVE_", "DJ_"))}
    admin_env = {
        **base_env,
        "DJARCHIVE_ADMIN_ENDPOINT": url,
        "DJARCHIVE_ADMIN_BUCKET": BUCKET,
        "DJARCHIVE_ADMIN_ACCESS_KEY": ADMIN_KEY,
        "DJARCHIVE_ADMIN_SECRET_KEY": ADMIN_SECRET,
    }
    client_env = {**base_env, "DJARCHIVE_CLIENT_ENDPOINT": url, "DJARCHIVE_CLIENT_BUCKET": BUCKET}
    print(f"# every command below runs in {work}:\ncd {shlex.quote(str(work))}")
    show_environment("curator", admin_env, base_env)
    try:
        source = work / "curation" / DATASET
        say(f"Generating a sample dataset in {source}")
        size = generate(source)
        print(f"{size / 1e6:.0f} MB: 3 sessions of ephys and imaging, nested folders, one 73 MB video")

        say("The curator makes a signing key, then publishes the revision signed")
        key = work / "curator.key"
        run("djarchive-admin", "keygen", str(key), env=admin_env, cwd=work)
        run(
            "djarchive-admin", "upload", DATASET, REVISION, str(source), "--sign-key", str(key),
            env=admin_env, cwd=work,
        )  # fmt: skip
        client_env["DJARCHIVE_CLIENT_TRUSTED_KEYS_FILE"] = str(key) + ".pub"  # researchers trust it

        say("A researcher browses the archive (anonymous), trusting the curator's public key")
        show_environment("researcher", client_env, base_env)
        run("djarchive", "datasets", env=client_env, cwd=work)
        run("djarchive", "revisions", env=client_env, cwd=work)
        run(
            "djarchive",
            "files",
            DATASET,
            REVISION,
            "--include",
            "subject1/session_2026-01-12/*",
            env=client_env,
            cwd=work,
        )

        target = f"./{DATASET}-{REVISION}"
        say(
            "Downloading: concurrent, large files in parallel ranges, every byte checked against the manifest"
        )
        run("djarchive", "download", DATASET, REVISION, target, env=client_env, cwd=work)
        say("Verifying the local copy")
        run("djarchive", "verify", DATASET, REVISION, target, env=client_env, cwd=work)
        say("Downloading again: everything is already present and verified, nothing is fetched")
        run("djarchive", "download", DATASET, REVISION, target, env=client_env, cwd=work)

        say("A new revision: one file changed, one moved, one added; the curator publishes v2")
        revise(source)
        run(
            "djarchive-admin", "upload", DATASET, "v2", str(source), "--sign-key", str(key),
            env=admin_env, cwd=work,
        )  # fmt: skip
        run("djarchive", "diff", DATASET, REVISION, "v2", env=client_env, cwd=work)
        say("Upgrading the local copy in place: only what changed travels")
        run("djarchive", "download", DATASET, "v2", target, "--dry-run", env=client_env, cwd=work)
        run("djarchive", "download", DATASET, "v2", target, env=client_env, cwd=work)
        say("What the folder holds, and whether its revision still stands")
        run("djarchive", "status", target, env=client_env, cwd=work)
        run("djarchive", "verify", target, env=client_env, cwd=work)
        if args.keep:
            say(f"Kept {work} and the server at {url}: run the commands above by hand; Ctrl-C ends")
            try:
                while True:
                    time.sleep(3600)
            except KeyboardInterrupt:
                pass
    finally:
        say("Stopping the server")
        server.stop()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        print(parting_words(work, kept=args.keep))
    print("\ndemo finished: all steps succeeded")
    return 0


if __name__ == "__main__":
    sys.exit(main())
