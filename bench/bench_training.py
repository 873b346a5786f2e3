#!/usr/bin/env python3
"""Training-read benchmark: reading parts of a version through dsv:// from S3, no checkout.

    python bench/bench_training.py                 # a 1 GiB version (the issue's figure)
    python bench/bench_training.py --size-mib 128  # a quicker run

A version of --size-mib MiB (random shards of 64 MiB, plus labels.parquet and
one.bin, a 1 MiB file) is committed, pushed to a moto S3 server run in this
process (bench_remote.py's server: requests and response body bytes counted
at the server), and read back in these ways, each from an empty cache:

  one-file   dsv:// read of one.bin (1 MiB)            target: < 2 MiB over the wire
  warm       the same read again (cache filled)        only the ref and pack listing
  column     pandas-free pyarrow read of one column of labels.parquet through dsv://
  shard      a 64 MiB shard read sequentially through dsv:// (read-ahead at work)
  get        `dsv get URL one.bin` (a real process)
  clone      `dsv clone` of the version: what a read costs without lazy reads

The peer is the same data as plain S3 objects read with s3fs (the floor: a
tool cannot read less than the bytes asked for); ratios are dsv/peer for
bytes and seconds, from the same run.  The machine is noisy: only same-run
ratios compare.  Exit status 1 if a read returned wrong bytes or the
one-file target is missed.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_remote import start_s3_server

MiB = 1 << 20
BUCKET = "dsv-bench-training"
ONE_FILE_TARGET = 2 * MiB


def human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


def make_version(root: Path, size_mib: int) -> dict[str, bytes]:
    """The dataset on disk; returns the bytes of the files read back (for checking)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = random.Random(1)
    root.mkdir(parents=True)
    shards = max(1, -(-(size_mib - 2) // 64))  # at least size_mib in all
    for i in range(shards):
        with open(root / f"shard-{i:03d}.bin", "wb") as f:
            for _ in range(64):
                f.write(rng.randbytes(MiB))
    one = rng.randbytes(MiB)
    (root / "one.bin").write_bytes(one)
    n = 200_000
    table = pa.table(
        {
            "id": list(range(n)),
            "label": [rng.choice(["cat", "dog", "bird"]) for _ in range(n)],
            "feature": [rng.random() for _ in range(n)],
            "blob": [rng.randbytes(8).hex() for _ in range(n)],
        }
    )
    pq.write_table(table, root / "labels.parquet", row_group_size=n)
    return {"one.bin": one, "shard-000.bin": (root / "shard-000.bin").read_bytes()}


def dsv(*args: str, cwd: Path, env: dict[str, str]) -> str:
    p = subprocess.run(
        [sys.executable, "-m", "dsv", *args], cwd=cwd, env=env, capture_output=True, text=True
    )
    if p.returncode != 0:
        raise SystemExit(f"dsv {' '.join(args)} failed: {p.stderr}")
    return p.stdout


class Meter:
    def __init__(self, server: Any) -> None:
        self.server = server

    def __enter__(self) -> Meter:
        self.server.reset()
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self.t0
        snap = self.server.snapshot()
        self.requests = snap.requests
        self.bytes = snap.bytes_out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size-mib", type=int, default=1024, help="version size (default 1024)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = ap.parse_args()

    server = start_s3_server()
    endpoint = server.endpoint
    env = {
        **os.environ,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "DSV_AUTHOR_NAME": "bench",
        "DSV_AUTHOR_EMAIL": "bench@localhost",
    }
    os.environ.update({k: env[k] for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")})
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    import boto3

    boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(Bucket=BUCKET)
    tmp = Path(tempfile.mkdtemp(prefix="dsv-bench-training-"))
    ok = True
    try:
        data = tmp / "data"
        print(f"building a {args.size_mib} MiB version in {data} ...", flush=True)
        want = make_version(data, args.size_mib)
        dsv("init", cwd=data, env=env)
        dsv("commit", "-q", "-m", "v1", cwd=data, env=env)
        dsv("tag", "v1", cwd=data, env=env)
        url = f"s3://{BUCKET}/dataset"
        dsv("remote", "add", "origin", url, "--endpoint-url", endpoint, cwd=data, env=env)
        t0 = time.perf_counter()
        dsv("push", "-q", "origin", "main", "v1", cwd=data, env=env)
        print(f"pushed in {time.perf_counter() - t0:.1f}s", flush=True)
        # the peer's copy: the same files as plain objects
        s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
        for name in ("one.bin", "shard-000.bin", "labels.parquet"):
            s3.upload_file(str(data / name), BUCKET, f"plain/{name}")

        import pyarrow.parquet as pq

        from dsv.api.fs import DsvFileSystem

        rows: list[tuple[str, Meter, Meter | None]] = []

        def fresh_fs() -> Any:
            DsvFileSystem.clear_instance_cache()
            cache = tmp / f"cache-{time.monotonic_ns()}"
            return DsvFileSystem(remote=url, endpoint_url=endpoint, cache_dir=str(cache))

        def peer_fs() -> Any:
            import s3fs

            s3fs.S3FileSystem.clear_instance_cache()
            return s3fs.S3FileSystem(client_kwargs={"endpoint_url": endpoint}, anon=False)

        have_peer = True
        try:
            import s3fs  # noqa: F401
        except ImportError:
            have_peer = False
            print("s3fs is not installed: no peer column")

        # one file, cold and warm
        fs = fresh_fs()
        with Meter(server) as m1:
            got = fs.cat_file("v1/one.bin")
        ok &= got == want["one.bin"]
        p1 = None
        if have_peer:
            pfs = peer_fs()
            with Meter(server) as p1:
                ok &= pfs.cat_file(f"{BUCKET}/plain/one.bin") == want["one.bin"]
        rows.append(("one-file (1 MiB)", m1, p1))
        # a new process's view: the same cache, nothing in memory
        cache_dir = str(fs.source.root.parent)
        fs.source.close()
        DsvFileSystem.clear_instance_cache()
        warm = DsvFileSystem(remote=url, endpoint_url=endpoint, cache_dir=cache_dir)
        with Meter(server) as m2:
            ok &= warm.cat_file("v1/one.bin") == want["one.bin"]
        rows.append(("warm (cached)", m2, None))

        # one column of a table
        fs = fresh_fs()
        with Meter(server) as m3:
            col = pq.read_table("v1/labels.parquet", filesystem=fs, columns=["label"])
        p3 = None
        if have_peer:
            pfs = peer_fs()
            with Meter(server) as p3:
                pcol = pq.read_table(
                    f"{BUCKET}/plain/labels.parquet", filesystem=pfs, columns=["label"]
                )
            ok &= col.equals(pcol)
        rows.append(("column of labels.parquet", m3, p3))

        # a whole shard, sequentially
        fs = fresh_fs()
        with Meter(server) as m4, fs.open("v1/shard-000.bin", "rb") as f:
            h = bytearray()
            while chunk := f.read(4 * MiB):
                h += chunk
        ok &= bytes(h) == want["shard-000.bin"]
        p4 = None
        if have_peer:
            pfs = peer_fs()
            with Meter(server) as p4, pfs.open(f"{BUCKET}/plain/shard-000.bin", "rb") as f:
                while f.read(4 * MiB):
                    pass
        rows.append(("shard (64 MiB, sequential)", m4, p4))

        # dsv get, a real process with an empty cache
        out = tmp / "got"
        out.mkdir()
        genv = {**env, "DSV_CACHE_DIR": str(tmp / "cache-get")}
        with Meter(server) as m5:
            dsv("get", url, "one.bin", "--rev", "v1", "--endpoint-url", endpoint, cwd=out, env=genv)
        ok &= (out / "one.bin").read_bytes() == want["one.bin"]
        rows.append(("dsv get one.bin", m5, None))

        # the full version, for scale
        with Meter(server) as m6:
            dsv(
                "clone", "-q", url, str(tmp / "clone"), "--endpoint-url", endpoint, cwd=tmp, env=env
            )
        rows.append(("dsv clone (whole version)", m6, None))

        print()
        print(
            f"{'read':<28} {'dsv bytes':>11} {'req':>5} {'s':>6}   {'peer bytes':>11} {'s':>6}   {'bytes x':>7} {'time x':>6}"
        )
        for name, m, p in rows:
            line = f"{name:<28} {human(m.bytes):>11} {m.requests:>5} {m.seconds:>6.2f}"
            if p is not None:
                line += (
                    f"   {human(p.bytes):>11} {p.seconds:>6.2f}"
                    f"   {m.bytes / max(1, p.bytes):>7.2f} {m.seconds / max(1e-9, p.seconds):>6.2f}"
                )
            print(line)
        target_ok = m1.bytes < ONE_FILE_TARGET
        print()
        print(
            f"one 1 MiB file of a {args.size_mib} MiB version: {m1.bytes:,} bytes from the server"
            f" (target < {human(ONE_FILE_TARGET)}): {'PASS' if target_ok else 'FAIL'}"
        )
        print("bytes x, time x: dsv / plain S3 objects read with s3fs (the floor)")
        ok &= target_ok
        if not ok:
            print("FAILED: wrong bytes or target missed")
        return 0 if ok else 1
    finally:
        server.stop()
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
