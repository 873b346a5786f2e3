"""A small dataset with two versions, for the training, dsv:// and get tests.

Files of every shape a reader meets: a Parquet and a CSV table, many small
files in class folders, a multi-chunk random file (and one of zeros, whose
chunks are stored compressed), an empty file, an executable, a symlink.
"""

from __future__ import annotations

import os
import random
from pathlib import Path

from dsv import api
from dsv.repo import Repository

from .conftest import write


def labels_table(rows: int, seed: int) -> object:
    import pyarrow as pa

    rng = random.Random(seed)
    ids = list(range(rows))
    x1 = [rng.gauss(0, 1) for _ in ids]
    x2 = [rng.gauss(0, 1) for _ in ids]
    label = ["cat" if a + 0.5 * b > 0 else "dog" for a, b in zip(x1, x2)]
    return pa.table({"id": ids, "x1": x1, "x2": x2, "label": label})


def build(root: Path) -> dict[str, str]:
    """Commit v1 and v2 in the repository at ``root``; returns {tag: commit hex}."""
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    rng = random.Random(7)
    repo = Repository(root)
    try:
        table = labels_table(4000, 1)
        (root / "tables").mkdir(exist_ok=True)
        pq.write_table(table, root / "labels.parquet")
        pacsv.write_csv(table, root / "tables" / "labels.csv")
        for cls in ("cat", "dog"):
            for i in range(12):
                write(
                    root / "images" / cls / f"{i:04d}.png", rng.randbytes(rng.randint(10, 30_000))
                )
        write(root / "big" / "blob.bin", rng.randbytes(3 << 20))
        write(root / "big" / "zeros.bin", bytes(1 << 20))
        write(root / "empty.txt", b"")
        write(root / "tools" / "run.sh", "#!/bin/sh\necho train\n", mode=0o755)
        os.symlink("images/cat/0001.png", root / "link")
        api.commit(repo, "v1")
        api.tag_create(repo, "v1")

        blob = bytearray((root / "big" / "blob.bin").read_bytes())
        blob[1_500_000:1_500_010] = b"0123456789"
        write(root / "big" / "blob.bin", bytes(blob))
        (root / "images" / "dog" / "0003.png").unlink()
        write(root / "images" / "cat" / "0100.png", rng.randbytes(5000))
        pq.write_table(labels_table(4100, 2), root / "labels.parquet")
        api.commit(repo, "v2: relabel, more cats")
        api.tag_create(repo, "v2")
        return {t: api.rev_parse(repo, t) for t in ("v1", "v2")}
    finally:
        repo.close()


def checkout_files(root: Path, rev: str) -> dict[str, bytes]:
    """The bytes of every file of ``rev`` as a real checkout writes them (symlinks followed)."""
    repo = Repository(root)
    try:
        api.checkout(repo, rev, force=True)
    finally:
        repo.close()
    out: dict[str, bytes] = {}
    for dirpath, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if d != ".dsv"]
        for name in files:
            p = Path(dirpath) / name
            out[p.relative_to(root).as_posix()] = p.read_bytes()
    return out
