#!/usr/bin/env bash
# A small tour of dsv on a generated example dataset: commit, edit, status, diff of versions, checkout.
set -euo pipefail
work=$(mktemp -d "${TMPDIR:-/tmp}/dsv-quickstart.XXXXXX")
trap 'rm -rf "$work"' EXIT
cd "$work"
python - <<'PY'
import os, random
random.seed(0)
for split, n in (("train", 60), ("val", 12)):
    for i in range(n):
        cls = ("cat", "dog", "bird")[i % 3]
        os.makedirs(f"data/{split}/{cls}", exist_ok=True)
        with open(f"data/{split}/{cls}/{i:04d}.png", "wb") as f:
            f.write(random.randbytes(random.randint(2000, 20000)))
with open("data/labels.csv", "w") as f:
    f.write("id,label\n" + "".join(f"{i},{('cat','dog','bird')[i % 3]}\n" for i in range(72)))
with open("data/big.bin", "wb") as f:
    f.write(random.randbytes(8 << 20))
PY
cd data
dsv init
dsv commit -m "v1: first version" --meta source=quickstart
# relabel one image, append to the big file, add a new image
mv train/cat/0000.png train/dog/0000.png
head -c 100000 /dev/urandom >> big.bin
head -c 5000 /dev/urandom > train/bird/9999.png
dsv status
dsv diff                       # the move cat/ -> dog/ is a relabel; per-class counts before -> after
dsv commit -m "v2: relabel, append, add"
dsv tag v2
dsv log --stat
dsv changelog HEAD~1..HEAD
dsv checkout HEAD~1
dsv status
dsv checkout main
dsv fsck
echo "quickstart finished: every step above ran against $work/data"
