#!/usr/bin/env python3
"""Reliability report: kill trials per command, injected faults, fuzz cases; each with data lost.

    python bench/reliability.py                 # 50 kill trials per command, seeded
    python bench/reliability.py --trials 100 --seed 7 --only commit,checkout

Runs the same harness as tests/test_crash.py, the fault-injection drills and
the decoder fuzzers, at a size meant for a report rather than for CI.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.crash_harness import ALL  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--trials", type=int, default=50)
    ap.add_argument("--seed", type=int, default=2026)
    ap.add_argument("--only", default=",".join(sorted(ALL)))
    ap.add_argument("--skip-faults", action="store_true")
    ap.add_argument("--skip-fuzz", action="store_true")
    args = ap.parse_args()
    failed = False
    print(f"kill trials (SIGKILL at a random moment, seed {args.seed})")
    with tempfile.TemporaryDirectory(prefix="dsv-reliability-") as tmp:
        for name in args.only.split(","):
            t0 = time.perf_counter()
            out = ALL[name](Path(tmp), args.trials, args.seed)
            print(f"  {out.line()}  ({time.perf_counter() - t0:.0f} s)", flush=True)
            failed |= bool(out.failures)
        if not args.skip_faults:
            from tests.fault_drills import run_all as run_faults

            print("injected faults")
            for line, ok in run_faults(Path(tmp), args.seed):
                print(f"  {line}", flush=True)
                failed |= not ok
        if not args.skip_fuzz:
            from tests.fuzz_decoders import run_all as run_fuzz

            print("decoder fuzzing (hypothesis)")
            for line, ok in run_fuzz():
                print(f"  {line}", flush=True)
                failed |= not ok
    print("RESULT:", "FAIL" if failed else "all repositories valid, 0 data lost")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
