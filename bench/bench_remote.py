#!/usr/bin/env python3
"""Remote benchmark: dsv push/clone vs DVC push/pull, side by side in one run, reported as ratios.

    python bench/bench_remote.py --repeat 3                # scale 1: 20k images, 1 GiB big
    python bench/bench_remote.py --quick                   # scale 0.05
    python bench/bench_remote.py --only images --remotes s3 --json-out out.json

Remotes (--remotes, default both):
  local   a directory (dsv: a path; DVC: a local remote)
  s3      a moto S3 server in server mode (real HTTP), run in this process by the counting
          server of tests/s3server.py, extended here to also count request and response body
          bytes. Every request either tool sends is counted at the server. Both tools get fake
          AWS credentials and the endpoint (`dsv remote add --endpoint-url`, DVC `endpointurl`).

Scenarios, per remote:
  images   (make_data.py images: 20,000 files of 2-20 KB at scale 1)
    push    `dsv push R --json`  vs  `dvc push -r R`            to a fresh, empty remote each round
    clone   `dsv clone URL DIR`  vs  `dvc pull -r R` in an empty workspace holding only a copy of
            .dvc/config and data.dvc (the DVC equivalent of a clone without git; the copy is
            untimed, which favours DVC). Each clone is compared byte for byte with the data.
            `cp -r` of the data into an empty directory is timed alongside, as the floor of
            any clone on this disk (file creation dominates on it).
    requests (s3) sent to the server by each push / clone; target for dsv push: <= 1% of files
  big      (make_data.py big: one 1 GiB file at scale 1)
    v1 push (info), then the v2 edit (1 MiB overwrite + 10 MiB append) is committed
    (`dsv commit` / `dvc add`, untimed) and pushed: bytes uploaded, measured at the remote
    (directory growth, or request body bytes at the S3 server) and as reported by dsv
    (`bytes_sent`); target dsv < 15 MiB. Then v2 is cloned (info) and verified byte for byte.

Push and clone of images repeat --repeat times, the tools taking turns (order rotated each
round), and the median is reported. Every command runs under bench_foundation's launcher
(seconds from spawn to reap; peak RSS via os.wait4). Ratios are DVC/dsv: above 1 means dsv is
faster (or sends less). The machine is shared and noisy: only same-run ratios compare. Page
caches cannot be dropped, so every figure is WARM-CACHE; a sync(2), untimed, runs before each
command (--no-sync to skip it). Both tools use their default parallelism.
Exit status: 0 if every command succeeded and every clone matched (targets may still FAIL),
1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import shlex
import shutil
import statistics
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_foundation import (
    DEFAULT_MAKE_DATA,
    REPO_ROOT,
    CommandFailed,
    MiB,
    Row,
    Run,
    Tool,
    drop_run_dir,
    ensure_bytecode,
    failures_recorded,
    fmt_ratio,
    fmt_value,
    human_bytes,
    judge,
    load_make_data,
    print_table,
    remove,
    resolve_dsv,
    resolve_exe,
    tree_bytes,
    tree_files,
)

KINDS = ("images", "big")
REMOTES = ("local", "s3")
BUCKET = "dsv-bench"

# Targets (defined at --scale 1; at other scales they are indicative only).
PUSH_VS_DVC = 5.0
CLONE_VS_DVC = 5.0
REQUESTS_PER_FILE = 0.01  # S3 requests for pushing N small files: <= 1% of N
V2_BIG_SLACK = 4 * MiB  # on top of the edit's new bytes: 11 MiB + 4 MiB = 15 MiB at scale 1
RSS_MAX_MB = 300.0


# ---------------------------------------------------------------------------- S3 server


class _CountingInput:
    """A wsgi.input that counts the bytes the application reads from it."""

    def __init__(self, inner: Any, add: Callable[[int], None]) -> None:
        self._inner, self._add = inner, add

    def read(self, *args: Any) -> bytes:
        data: bytes = self._inner.read(*args)
        self._add(len(data))
        return data

    def readline(self, *args: Any) -> bytes:
        data: bytes = self._inner.readline(*args)
        self._add(len(data))
        return data

    def readlines(self, *args: Any) -> list[bytes]:
        lines: list[bytes] = self._inner.readlines(*args)
        self._add(sum(map(len, lines)))
        return lines

    def readinto(self, b: Any) -> int:
        if hasattr(self._inner, "readinto"):
            n = self._inner.readinto(b) or 0
        else:
            data = self._inner.read(len(b))
            n = len(data)
            b[:n] = data
        self._add(n)
        return n

    def __iter__(self) -> Iterator[bytes]:
        for line in self._inner:
            self._add(len(line))
            yield line


class _CountingBody:
    """A WSGI response iterable that counts the bytes sent."""

    def __init__(self, inner: Iterable[bytes], add: Callable[[int], None]) -> None:
        self._inner, self._add = inner, add

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self._inner:
            self._add(len(chunk))
            yield chunk

    def close(self) -> None:
        close = getattr(self._inner, "close", None)
        if close is not None:
            close()


@dataclass
class S3Count:
    requests: int
    methods: dict[str, int]
    bytes_in: int  # request bodies (uploads)
    bytes_out: int  # response bodies (downloads)

    def brief(self) -> str:
        m = " ".join(f"{k} {v}" for k, v in sorted(self.methods.items()))
        return f"{self.requests} req ({m}), in {human_bytes(self.bytes_in)}, out {human_bytes(self.bytes_out)}"


def start_s3_server() -> Any:
    """tests/s3server.py's CountingMotoServer, also counting body bytes both ways."""
    if str(REPO_ROOT) not in sys.path:
        sys.path.insert(0, str(REPO_ROOT))
    try:
        from moto.server import (  # type: ignore[attr-defined]
            DomainDispatcherApplication,
            create_backend_app,
        )
        from tests.s3server import CountingMotoServer
        from werkzeug.serving import make_server
    except ImportError as e:
        sys.exit(
            f"bench_remote: the S3 remote needs moto[server] ({e}); pip install -e '.[dev]', "
            "or pass --remotes local"
        )
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no line per request on stderr

    class ByteCountingMotoServer(CountingMotoServer):
        def __init__(self) -> None:
            super().__init__()
            self.bytes_in = 0
            self.bytes_out = 0

        def _add_in(self, n: int) -> None:
            with self._count_lock:
                self.bytes_in += n

        def _add_out(self, n: int) -> None:
            with self._count_lock:
                self.bytes_out += n

        def _server_entry(self) -> None:  # as CountingMotoServer's, plus the byte counters
            app = DomainDispatcherApplication(create_backend_app)

            def counting(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
                with self._count_lock:
                    self.counts[environ.get("REQUEST_METHOD", "?")] += 1
                environ["wsgi.input"] = _CountingInput(environ["wsgi.input"], self._add_in)
                return _CountingBody(app(environ, start_response), self._add_out)

            self._server = make_server(self._ip_address, self._port, counting, True)
            self._server_ready_event.set()
            self._server.serve_forever()

        def reset(self) -> None:
            with self._count_lock:
                self.counts.clear()
                self.bytes_in = self.bytes_out = 0

        def snapshot(self) -> S3Count:
            with self._count_lock:
                return S3Count(
                    sum(self.counts.values()), dict(self.counts), self.bytes_in, self.bytes_out
                )

    srv = ByteCountingMotoServer()
    srv.start()
    return srv


def use_test_credentials() -> None:
    """moto's test credentials, for this process's boto3 and the commands it starts."""
    for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        os.environ[k] = "testing"
    os.environ["AWS_DEFAULT_REGION"] = "us-east-1"


def empty_s3(endpoint: str, bucket: str) -> None:
    """Drop everything the moto server holds (all buckets, kept in memory), then create
    ``bucket`` again."""
    req = urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST", data=b"")
    with urllib.request.urlopen(req, timeout=120) as resp:
        resp.read()
    import boto3

    boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(Bucket=bucket)


# ---------------------------------------------------------------------------- benchmark


@dataclass
class Remote:
    """One remote as each tool names it."""

    kind: str  # local | s3
    name: str  # the remote's name in the tool's config
    url: str


class RemoteBench:
    def __init__(self, args: argparse.Namespace, md: ModuleType, run_dir: Path) -> None:
        self.args = args
        self.md = md
        self.run_dir = run_dir
        self.scale: float = args.scale
        self.rows: list[Row] = []
        self.failures: list[str] = []
        self.log: list[Run] = []
        self._hash_cache: dict[Path, dict[str, tuple[str, int]]] = {}
        self.s3: Any = None
        self.endpoint = ""

        aws_dir = run_dir / "aws"  # no real AWS config or credentials are read
        env = dict(os.environ)
        env.update(
            {
                "DVC_NO_ANALYTICS": "1",
                "DVC_SITE_CACHE_DIR": str(run_dir / "dvc-site-cache"),
                "DSV_LOCK_TIMEOUT": "10",
                "DSV_AUTHOR_NAME": "dsv-bench",
                "DSV_AUTHOR_EMAIL": "dsv-bench@localhost",
                "AWS_ACCESS_KEY_ID": "testing",
                "AWS_SECRET_ACCESS_KEY": "testing",
                "AWS_SESSION_TOKEN": "testing",
                "AWS_DEFAULT_REGION": "us-east-1",
                "AWS_REGION": "us-east-1",
                "AWS_CONFIG_FILE": str(aws_dir / "config"),
                "AWS_SHARED_CREDENTIALS_FILE": str(aws_dir / "credentials"),
                "AWS_EC2_METADATA_DISABLED": "true",
            }
        )
        for k in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
            env.pop(k, None)
        self.env = env
        sync = not args.no_sync
        argv, extra = resolve_dsv(args.dsv)
        self.dsv = Tool("dsv", argv, env | extra, self.log, sync)
        # `cp -r` of the data into an empty directory: the floor of any clone on this disk
        self.cp = Tool("cp", ["cp", "-r"], env, self.log, sync)
        self.dvc: Tool | None = None
        if not args.skip_dvc:
            exe = resolve_exe("dvc")
            if exe is None:
                sys.exit(
                    "bench_remote: `dvc` not found. Install it with `pip install dvc dvc-s3` "
                    "(both are in dsv's dev extras: pip install -e '.[dev]'), or pass --skip-dvc."
                )
            self.dvc = Tool("dvc", [exe], env, self.log, sync)

    # ------------------------------------------------------------------ setup

    def probe(self) -> dict[str, str]:
        info: dict[str, str] = {}
        r = self.dsv.run(["--version"], self.run_dir, "-", "probe", check=False)
        if r.rc != 0:
            tail = "\n".join((r.stderr or r.stdout).strip().splitlines()[-8:])
            sys.exit(
                f"bench_remote: the dsv CLI does not run ({shlex.join(self.dsv.argv)}):\n{tail}\n"
                "Install it (pip install -e .) or point --dsv at it."
            )
        info["dsv"] = r.stdout.strip()
        info["dsv_cmd"] = shlex.join(self.dsv.argv)
        if self.dvc is not None:
            info["dvc"] = self.dvc.run(["--version"], self.run_dir, "-", "probe").stdout.strip()
            if "s3" in self.args.remotes:
                try:
                    from importlib.metadata import version

                    info["dvc-s3"] = version("dvc-s3")
                except Exception:
                    sys.exit(
                        "bench_remote: DVC's S3 support is missing: pip install dvc-s3 "
                        "(in dsv's dev extras), or pass --remotes local"
                    )
        return info

    def start_s3(self) -> None:
        use_test_credentials()
        self.s3 = start_s3_server()
        self.endpoint = self.s3.endpoint
        self.reset_s3()

    def reset_s3(self) -> None:
        """Empty the moto server (all buckets), then create the bucket again (untimed)."""
        empty_s3(self.endpoint, BUCKET)
        self.s3.reset()

    def stop(self) -> None:
        if self.s3 is not None:
            self.s3.stop()
            self.s3 = None

    def remote(self, kind: str, tool: str, tag: str) -> Remote:
        name = f"{kind}-{tag}"
        if kind == "local":
            return Remote(kind, name, str(self.run_dir / "remotes" / f"{tool}-{tag}"))
        return Remote(kind, name, f"s3://{BUCKET}/{tool}-{tag}")

    def add_remote(self, tool: str, ws: Path, r: Remote, dataset: str) -> None:
        """Configure remote r in the workspace (untimed)."""
        if tool == "dsv":
            extra = ["--endpoint-url", self.endpoint] if r.kind == "s3" else []
            self.dsv.run(["remote", "add", r.name, r.url, *extra], ws, dataset, "remote add")
        else:
            assert self.dvc is not None
            self.dvc.run(["remote", "add", "-f", r.name, r.url], ws, dataset, "remote add")
            if r.kind == "s3":
                self.dvc.run(
                    ["remote", "modify", r.name, "endpointurl", self.endpoint],
                    ws,
                    dataset,
                    "remote add",
                )

    # ------------------------------------------------------------------ measuring

    def measure(
        self,
        kind: str,
        remote_dir: Path | None,
        fn: Callable[..., tuple[Run, dict[str, Any]]],
        *args: Any,
    ) -> tuple[Run, dict[str, Any], S3Count | None, int | None]:
        """fn(*args) -> (Run, dsv's --json document or {}); returns those, the S3 server's
        counts for the call (s3), and the growth of remote_dir (local)."""
        before = tree_bytes(remote_dir) if remote_dir is not None else None
        if kind == "s3":
            self.s3.reset()
        run, doc = fn(*args)
        count = self.s3.snapshot() if kind == "s3" else None
        grown = None if before is None or remote_dir is None else tree_bytes(remote_dir) - before
        return run, doc, count, grown

    def dsv_push(self, ws: Path, r: Remote, dataset: str, step: str) -> tuple[Run, dict[str, Any]]:
        run = self.dsv.run(["push", r.name, "--json"], ws, dataset, step)
        try:
            doc = json.loads(run.stdout)
        except ValueError:
            self.fail(f"{dataset}: `dsv push --json` output unreadable: {run.stdout[:300]!r}")
            doc = {}
        if doc.get("up_to_date"):
            self.fail(f"{dataset}: dsv push to a fresh remote {r.url} said up to date: {doc}")
        return run, doc

    def dvc_push(self, ws: Path, r: Remote, dataset: str, step: str) -> tuple[Run, dict[str, Any]]:
        assert self.dvc is not None
        return self.dvc.run(["push", "-q", "-r", r.name], ws, dataset, step), {}

    def dsv_clone(
        self, r: Remote, target: Path, dataset: str, step: str
    ) -> tuple[Run, dict[str, Any]]:
        target.parent.mkdir(parents=True, exist_ok=True)
        extra = ["--endpoint-url", self.endpoint] if r.kind == "s3" else []
        run = self.dsv.run(
            ["clone", r.url, str(target), *extra, "--json"], target.parent, dataset, step
        )
        try:
            doc = json.loads(run.stdout)
        except ValueError:
            self.fail(f"{dataset}: `dsv clone --json` output unreadable: {run.stdout[:300]!r}")
            doc = {}
        return run, doc

    def dvc_clone(
        self, src_ws: Path, r: Remote, target: Path, dataset: str, step: str
    ) -> tuple[Run, dict[str, Any]]:
        """An empty workspace with a copy of .dvc/config and the .dvc files (untimed), then
        `dvc pull` (timed)."""
        assert self.dvc is not None
        (target / ".dvc").mkdir(parents=True)
        shutil.copy2(src_ws / ".dvc" / "config", target / ".dvc" / "config")
        for p in src_ws.iterdir():
            if (p.suffix == ".dvc" and p.is_file()) or p.name == ".dvcignore":
                shutil.copy2(p, target / p.name)
        return self.dvc.run(["pull", "-q", "-r", r.name], target, dataset, step), {}

    # ------------------------------------------------------------------ checks

    def hashes(self, root: Path) -> dict[str, tuple[str, int]]:
        if root not in self._hash_cache:
            self._hash_cache[root] = self.md.hash_tree(root)
        return self._hash_cache[root]

    def fail(self, msg: str) -> None:
        self.failures.append(msg)
        bar = "!" * 78
        body = "\n".join("!! " + line for line in f"FAILURE: {msg}".splitlines())
        print(f"\n{bar}\n{body}\n{bar}\n", flush=True)

    def verify_clone(self, label: str, expected: Path, clone: Path, own: set[str]) -> bool:
        """clone/data must equal `expected` byte for byte (same paths, same sha256), and the
        clone's top level must hold nothing but data/ and the tool's own entries."""
        ok = True
        want = self.hashes(expected)
        got = clone / "data"
        have: dict[str, tuple[str, int]] = self.md.hash_tree(got) if got.is_dir() else {}
        missing = sorted(want.keys() - have.keys())
        extra = sorted(have.keys() - want.keys())
        differ = sorted(p for p in want.keys() & have.keys() if want[p] != have[p])
        if missing or extra or differ:
            parts = [f"{label}: clone differs ({len(want)} files expected, {len(have)} found)"]
            for name, paths in (("missing", missing), ("extra", extra), ("different", differ)):
                if paths:
                    parts.append(
                        f"  {name} ({len(paths)}): {', '.join(paths[:5])}"
                        + (" ..." if len(paths) > 5 else "")
                    )
            self.fail("\n".join(parts))
            ok = False
        others = sorted(p.name for p in clone.iterdir() if p.name not in own | {"data"})
        if others:
            self.fail(f"{label}: unexpected top-level entries in the clone: {others}")
            ok = False
        return ok

    def add(self, row: Row) -> Row:
        self.rows.append(row)
        return row

    def say(self, tool: str, step: str, run: Run, extra: str = "") -> None:
        print(
            f"  {tool:3} {step:<22} {run.seconds:8.3f} s  {run.maxrss_mb:5.0f} MB"
            + (f"  {extra}" if extra else ""),
            flush=True,
        )

    def tools(self) -> list[str]:
        return ["dsv", "dvc"] if self.dvc is not None else ["dsv"]

    # ------------------------------------------------------------------ setup of a dataset

    def setup(self, kind: str) -> tuple[Path, Path, Path, Path]:
        """v1 generated once; each tool's workspace holds a copy under data/ and commits it
        (untimed; bench_foundation measures commits)."""
        base = self.run_dir / kind
        v1 = base / "gen" / "v1"
        t0 = time.perf_counter()
        self.md.gen(kind, v1, self.scale)
        print(
            f"\n== {kind}: {tree_files(v1)} files, {human_bytes(tree_bytes(v1))}; generated in "
            f"{time.perf_counter() - t0:.1f} s",
            flush=True,
        )
        ws_dsv, ws_dvc = base / "dsv", base / "dvc"
        shutil.copytree(v1, ws_dsv / "data", symlinks=True)
        self.dsv.run(["init"], ws_dsv, kind, "init")
        self.dsv.run(["commit", "-q", "-m", "v1"], ws_dsv, kind, "commit v1")
        if self.dvc is not None:
            shutil.copytree(v1, ws_dvc / "data", symlinks=True)
            self.dvc.run(["init", "--no-scm", "-q"], ws_dvc, kind, "init")
            self.dvc.run(["config", "core.analytics", "false"], ws_dvc, kind, "config")
            self.dvc.run(["add", "-q", "data"], ws_dvc, kind, "add v1")
        return base, v1, ws_dsv, ws_dvc

    # ------------------------------------------------------------------ images

    def images(self) -> None:
        kind = "images"
        base, v1, ws_dsv, ws_dvc = self.setup(kind)
        n_files = tree_files(v1)
        try:
            for rk in self.args.remotes:
                self.images_on(rk, base, v1, n_files, ws_dsv, ws_dvc)
        finally:
            self._hash_cache.clear()
            if not self.args.keep:
                shutil.rmtree(base, ignore_errors=True)

    def images_on(
        self, rk: str, base: Path, v1: Path, n_files: int, ws_dsv: Path, ws_dvc: Path
    ) -> None:
        ds = f"images@{rk}"
        rep = self.args.repeat
        ws = {"dsv": ws_dsv, "dvc": ws_dvc}
        secs: dict[tuple[str, str], list[float]] = {}
        reqs: dict[tuple[str, str], list[int]] = {}
        sent: dict[tuple[str, str], list[int]] = {}
        self_req: dict[str, list[int]] = {"push": [], "clone": []}
        clone_ok = {t: True for t in self.tools()}
        print(f"\n-- {ds}: push and clone of {n_files} files, {rep} round(s)", flush=True)
        try:
            for i in range(rep):
                order = (
                    self.tools()[i % len(self.tools()) :] + self.tools()[: i % len(self.tools())]
                )
                rem = {t: self.remote(rk, t, f"img{i}") for t in order}
                for t in order:
                    self.add_remote(t, ws[t], rem[t], ds)
                # ---- push
                for t in order:
                    rdir = Path(rem[t].url) if rk == "local" else None
                    push_fn = self.dsv_push if t == "dsv" else self.dvc_push
                    run, doc, cnt, grown = self.measure(
                        rk, rdir, push_fn, ws[t], rem[t], ds, "push"
                    )
                    if isinstance(doc.get("requests"), int):
                        self_req["push"].append(doc["requests"])
                    secs.setdefault((t, "push"), []).append(run.seconds)
                    if cnt is not None:
                        reqs.setdefault((t, "push"), []).append(cnt.requests)
                        sent.setdefault((t, "push"), []).append(cnt.bytes_in)
                    elif grown is not None:
                        sent.setdefault((t, "push"), []).append(grown)
                    what = cnt.brief() if cnt else f"remote +{human_bytes(grown or 0)}"
                    if doc:
                        what += f"; dsv says {doc.get('requests')} req, {doc.get('packs')} packs"
                    self.say(t, f"push (round {i + 1})", run, what)
                # ---- clone (and `cp -r` of the data, for reference)
                turn = [*self.tools(), "cp"]
                turn = turn[i % len(turn) :] + turn[: i % len(turn)]
                for t in turn:
                    target = base / "clones" / f"{t}-{rk}-{i}"
                    if t == "cp":
                        target.mkdir(parents=True)
                        run = self.cp.run([str(v1), str(target / "data")], target, ds, "cp -r")
                        secs.setdefault((t, "clone"), []).append(run.seconds)
                        clone_ok[t] = clone_ok.get(t, True) & self.verify_clone(
                            f"{ds}: cp -r", v1, target, set()
                        )
                        self.say(t, f"cp -r (round {i + 1})", run)
                        remove(target)
                        continue
                    if t == "dsv":
                        run, doc, cnt, _ = self.measure(
                            rk, None, self.dsv_clone, rem[t], target, ds, "clone"
                        )
                        own = {".dsv"}
                    else:
                        run, doc, cnt, _ = self.measure(
                            rk, None, self.dvc_clone, ws[t], rem[t], target, ds, "clone"
                        )
                        own = {".dvc", ".dvcignore"} | {
                            p.name for p in target.iterdir() if p.suffix == ".dvc"
                        }
                    if isinstance(doc.get("requests"), int):
                        self_req["clone"].append(doc["requests"])
                    secs.setdefault((t, "clone"), []).append(run.seconds)
                    if cnt is not None:
                        reqs.setdefault((t, "clone"), []).append(cnt.requests)
                        sent.setdefault((t, "clone"), []).append(cnt.bytes_out)
                    what = cnt.brief() if cnt else ""
                    if doc:
                        what += f"; dsv says {doc.get('requests')} req"
                    clone_ok[t] &= self.verify_clone(f"{ds}: {t} clone", v1, target, own)
                    self.say(t, f"clone (round {i + 1})", run, what)
                    remove(target)
                # ---- clean up the round's remotes (untimed)
                if rk == "s3":
                    self.reset_s3()
                else:
                    for t in order:
                        remove(Path(rem[t].url))
        except CommandFailed as e:
            self.fail(f"{ds}: command failed: {e}")
            self.add(Row("ERROR", ds, "s", result="error", note=str(e).splitlines()[0][:120]))
            return

        def med(d: dict[tuple[str, str], list[Any]], t: str, step: str) -> float | None:
            v = d.get((t, step))
            return statistics.median(v) if v else None

        for step, target_x in (("push", PUSH_VS_DVC), ("clone", CLONE_VS_DVC)):
            row = Row(
                step,
                ds,
                "s",
                dsv=med(secs, "dsv", step),
                dvc=med(secs, "dvc", step),
                cp=med(secs, "cp", step),
                target=f"dvc/dsv >= {target_x:g}",
                note=f"median of {rep}"
                + ("; dsv clone vs dvc pull; verified vs data" if step == "clone" else ""),
            )
            if step == "clone" and not all(clone_ok.values()):
                row.result, row.note = "FAIL", row.note + "; CONTENT MISMATCH"
            else:
                row.result = judge(None if row.dvc_ratio is None else row.dvc_ratio >= target_x)
            self.add(row)
        if rk == "s3":
            limit = REQUESTS_PER_FILE * n_files
            pr = Row(
                "push requests",
                ds,
                "req",
                dsv=med(reqs, "dsv", "push"),
                dvc=med(reqs, "dvc", "push"),
                target=f"dsv <= {limit:g} (1% of {n_files} files)",
                note="counted at the S3 server",
            )
            pr.result = judge(None if pr.dsv is None else pr.dsv <= limit)
            cr = Row(
                "clone requests",
                ds,
                "req",
                dsv=med(reqs, "dsv", "clone"),
                dvc=med(reqs, "dvc", "clone"),
                note="counted at the S3 server",
            )
            for row, step in ((pr, "push"), (cr, "clone")):
                if self_req[step]:
                    said = statistics.median(self_req[step])
                    row.note += f"; dsv --json says {said:g}"
                    if row.dsv is not None and said != row.dsv:
                        row.note += " (differs)"
            self.add(pr)
            self.add(cr)
            self.add(
                Row(
                    "push bytes uploaded",
                    ds,
                    "B",
                    dsv=med(sent, "dsv", "push"),
                    dvc=med(sent, "dvc", "push"),
                    note="request bodies at the S3 server",
                )
            )
            self.add(
                Row(
                    "clone bytes downloaded",
                    ds,
                    "B",
                    dsv=med(sent, "dsv", "clone"),
                    dvc=med(sent, "dvc", "clone"),
                    note="response bodies at the S3 server",
                )
            )
        else:
            self.add(
                Row(
                    "remote size after push",
                    ds,
                    "B",
                    dsv=med(sent, "dsv", "push"),
                    dvc=med(sent, "dvc", "push"),
                    note=f"data {human_bytes(tree_bytes(v1))}",
                )
            )

    # ------------------------------------------------------------------ big

    def big(self) -> None:
        kind = "big"
        base, v1, ws_dsv, ws_dvc = self.setup(kind)
        v2 = base / "gen" / "v2"
        shutil.copytree(v1, v2, symlinks=True)
        self.md.edit(kind, v2)
        size = (v1 / "big.bin").stat().st_size
        new_bytes = size // 1024 + size * 10 // 1024  # overwritten + appended
        limit = new_bytes + V2_BIG_SLACK
        ws = {"dsv": ws_dsv, "dvc": ws_dvc}
        try:
            rems = {
                (rk, t): self.remote(rk, t, "big") for rk in self.args.remotes for t in self.tools()
            }
            for (_, t), r in rems.items():
                self.add_remote(t, ws[t], r, kind)
            # ---- v1 push (info)
            for rk in self.args.remotes:
                ds = f"big@{rk}"
                print(f"\n-- {ds}: v1 push", flush=True)
                row = Row("v1 push", ds, "s", note="info")
                for t in self.tools():
                    r = rems[(rk, t)]
                    rdir = Path(r.url) if rk == "local" else None
                    push_fn = self.dsv_push if t == "dsv" else self.dvc_push
                    run, _, cnt, grown = self.measure(rk, rdir, push_fn, ws[t], r, ds, "push v1")
                    setattr(row, t, run.seconds)
                    self.say(
                        t,
                        "push v1",
                        run,
                        cnt.brief() if cnt else f"remote +{human_bytes(grown or 0)}",
                    )
                self.add(row)
            # ---- the v2 edit, committed (untimed)
            print(f"\n-- big: v2 edit ({human_bytes(new_bytes)} new bytes), committed", flush=True)
            self.md.edit(kind, ws_dsv / "data")
            self.dsv.run(["commit", "-q", "-m", "v2"], ws_dsv, kind, "commit v2")
            if self.dvc is not None:
                self.md.edit(kind, ws_dvc / "data")
                self.dvc.run(["add", "-q", "data"], ws_dvc, kind, "add v2")
            # ---- v2 push and clone
            for rk in self.args.remotes:
                ds = f"big@{rk}"
                print(f"\n-- {ds}: v2 push, v2 clone", flush=True)
                push = Row("v2 push", ds, "s", note="info")
                up = Row(
                    "v2 push uploaded",
                    ds,
                    "B",
                    target=f"dsv < {human_bytes(limit)}",
                    note=f"edit writes {human_bytes(new_bytes)} new bytes; "
                    + ("request bodies at the S3 server" if rk == "s3" else "remote dir growth"),
                )
                dsv_sent: int | None = None
                for t in self.tools():
                    r = rems[(rk, t)]
                    rdir = Path(r.url) if rk == "local" else None
                    push_fn = self.dsv_push if t == "dsv" else self.dvc_push
                    run, doc, cnt, grown = self.measure(rk, rdir, push_fn, ws[t], r, ds, "push v2")
                    if t == "dsv" and isinstance(doc.get("bytes_sent"), int):
                        dsv_sent = doc["bytes_sent"]
                    setattr(push, t, run.seconds)
                    setattr(up, t, cnt.bytes_in if cnt is not None else grown)
                    self.say(
                        t,
                        "push v2",
                        run,
                        cnt.brief() if cnt else f"remote +{human_bytes(grown or 0)}",
                    )
                if dsv_sent is not None:
                    up.note += f"; dsv --json bytes_sent {human_bytes(dsv_sent)}"
                up.result = judge(
                    None
                    if up.dsv is None
                    else up.dsv < limit and (dsv_sent is None or dsv_sent < limit)
                )
                self.add(push)
                self.add(up)
                # clone of v2 (info), verified
                clone = Row("v2 clone", ds, "s", note="info; dsv clone vs dvc pull; verified vs v2")
                ok = True
                cp_dir = base / "clones" / f"cp-{rk}"
                cp_dir.mkdir(parents=True)
                run = self.cp.run([str(v2), str(cp_dir / "data")], cp_dir, ds, "cp -r")
                clone.cp = run.seconds
                ok &= self.verify_clone(f"{ds}: cp -r", v2, cp_dir, set())
                self.say("cp", "cp -r v2", run)
                remove(cp_dir)
                for t in self.tools():
                    r = rems[(rk, t)]
                    target = base / "clones" / f"{t}-{rk}"
                    if t == "dsv":
                        run, _, cnt, _ = self.measure(
                            rk, None, self.dsv_clone, r, target, ds, "clone v2"
                        )
                        own = {".dsv"}
                    else:
                        run, _, cnt, _ = self.measure(
                            rk, None, self.dvc_clone, ws_dvc, r, target, ds, "clone v2"
                        )
                        own = {".dvc", ".dvcignore", "data.dvc"}
                    setattr(clone, t, run.seconds)
                    ok &= self.verify_clone(f"{ds}: {t} clone of v2", v2, target, own)
                    self.say(t, "clone v2", run, cnt.brief() if cnt else "")
                    remove(target)
                if not ok:
                    clone.result, clone.note = "FAIL", clone.note + "; CONTENT MISMATCH"
                self.add(clone)
        except CommandFailed as e:
            self.fail(f"big: command failed: {e}")
            self.add(Row("ERROR", "big", "s", result="error", note=str(e).splitlines()[0][:120]))
        finally:
            self._hash_cache.clear()
            if "s3" in self.args.remotes:
                self.reset_s3()
            if not self.args.keep:
                shutil.rmtree(base, ignore_errors=True)
                shutil.rmtree(self.run_dir / "remotes", ignore_errors=True)

    # ------------------------------------------------------------------ output

    def report(self, meta: dict[str, Any]) -> None:
        print("\n" + "=" * 100)
        print(
            f"RESULTS  scale {self.scale:g}, repeat {self.args.repeat}; "
            "ALL FIGURES WARM-CACHE (page cache not dropped"
            + ("; untimed sync before each command)" if not self.args.no_sync else ")")
        )
        print(
            "ratios are dvc/dsv: > 1 means dsv is faster or sends less; only same-run ratios compare"
        )
        print("cp -r: the data copied into an empty directory, the floor of any clone on this disk")
        if self.scale != 1:
            print(
                f"NOTE: targets are defined at --scale 1; at scale {self.scale:g} PASS/FAIL is "
                "indicative only"
            )
        print()
        print_table(
            [
                "scenario",
                "data@remote",
                "dsv",
                "dvc",
                "cp -r",
                "dvc/dsv",
                "cp/dsv",
                "target",
                "result",
                "note",
            ],
            (
                [
                    r.scenario,
                    r.dataset,
                    fmt_value(r.dsv, r.unit),
                    fmt_value(r.dvc, r.unit),
                    fmt_value(r.cp, r.unit),
                    fmt_ratio(r.dvc_ratio),
                    fmt_ratio(r.cp_ratio),
                    r.target or "-",
                    r.result,
                    r.note,
                ]
                for r in self.rows
            ),
        )

        steps: dict[tuple[str, str], dict[str, Run]] = {}
        for run in self.log:
            if run.dataset != "-" and run.step in (
                "push",
                "clone",
                "push v1",
                "push v2",
                "clone v2",
            ):
                cur = steps.setdefault((run.dataset, run.step), {})
                if run.tool not in cur or run.maxrss_mb > cur[run.tool].maxrss_mb:
                    cur[run.tool] = run
        if steps:
            print("\npeak RSS per command (max over repeats; ru_maxrss of the child via os.wait4)")

            def cell(d: dict[str, Run], tool: str) -> str:
                return f"{d[tool].maxrss_mb:.0f} MB" if tool in d else "-"

            print_table(
                ["data@remote", "step", "dsv", "dvc", f"dsv < {RSS_MAX_MB:g} MB"],
                (
                    [
                        ds,
                        step,
                        cell(d, "dsv"),
                        cell(d, "dvc"),
                        judge(d["dsv"].maxrss_mb < RSS_MAX_MB) if "dsv" in d else "-",
                    ]
                    for (ds, step), d in steps.items()
                ),
            )

        n_fail = sum(r.result == "FAIL" for r in self.rows)
        n_pass = sum(r.result == "PASS" for r in self.rows)
        print(f"\ntargets: {n_pass} PASS, {n_fail} FAIL")
        if self.failures:
            print(f"\n!!! {len(self.failures)} CORRECTNESS FAILURE(S) / ERROR(S):")
            for f in self.failures:
                print("!!! " + f.replace("\n", "\n!!! "))
        if self.args.json_out:
            doc = {
                "meta": meta,
                "rows": [
                    asdict(r) | {"dvc_ratio": r.dvc_ratio, "cp_ratio": r.cp_ratio}
                    for r in self.rows
                ],
                "commands": [
                    {k: v for k, v in asdict(r).items() if k not in ("stdout", "stderr")}
                    for r in self.log
                ],
                "failures": self.failures,
            }
            Path(self.args.json_out).write_text(json.dumps(doc, indent=1, default=str) + "\n")
            print(f"\nJSON written to {self.args.json_out}")


# ---------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--scale", type=float, default=None, help="dataset scale (default 1)")
    ap.add_argument("--quick", action="store_true", help="scale 0.05")
    ap.add_argument(
        "--only", default=",".join(KINDS), help="datasets among images,big (default both)"
    )
    ap.add_argument(
        "--remotes", default=",".join(REMOTES), help="remotes among local,s3 (default both)"
    )
    ap.add_argument(
        "--repeat", type=int, default=1, help="rounds of images push+clone (median; default 1)"
    )
    ap.add_argument("--skip-dvc", action="store_true", help="run only dsv (no ratios)")
    ap.add_argument(
        "--dsv",
        default=None,
        metavar="CMD",
        help="dsv command (default: the dsv script beside this python, on PATH, "
        "else python -m dsv with src/ on PYTHONPATH)",
    )
    ap.add_argument(
        "--make-data",
        type=Path,
        default=DEFAULT_MAKE_DATA,
        help=f"path of make_data.py (default {DEFAULT_MAKE_DATA})",
    )
    ap.add_argument(
        "--workdir", type=Path, default=None, help="parent of the run's temp dir (default: $TMPDIR)"
    )
    ap.add_argument(
        "--no-sync", action="store_true", help="do not run sync(2) (untimed) before each command"
    )
    ap.add_argument("--json-out", default=None, metavar="FILE", help="also write results as JSON")
    ap.add_argument("--keep", action="store_true", help="keep the run's temp dir")
    a = ap.parse_args(argv)
    if a.quick and a.scale is not None:
        ap.error("--quick and --scale exclude each other")
    a.scale = 0.05 if a.quick else (1.0 if a.scale is None else a.scale)
    if a.scale <= 0:
        ap.error("--scale must be > 0")
    if a.repeat < 1:
        ap.error("--repeat must be >= 1")
    a.kinds = [k.strip() for k in a.only.split(",") if k.strip()]
    a.remotes = [k.strip() for k in a.remotes.split(",") if k.strip()]
    for opt, got, allowed in (("--only", a.kinds, KINDS), ("--remotes", a.remotes, REMOTES)):
        bad = [k for k in got if k not in allowed]
        if bad or not got:
            ap.error(f"{opt}: unknown or no value(s) {bad}; choose from {','.join(allowed)}")
    return a


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    ensure_bytecode()
    md = load_make_data(args.make_data)
    if args.workdir is not None:
        wd = args.workdir.resolve()
        if wd == REPO_ROOT or REPO_ROOT in wd.parents:
            sys.exit("bench_remote: --workdir must be outside the repository")
        wd.mkdir(parents=True, exist_ok=True)
    run_dir = Path(
        tempfile.mkdtemp(
            prefix="dsv-bench-remote-", dir=None if args.workdir is None else str(args.workdir)
        )
    )
    bench = RemoteBench(args, md, run_dir)
    meta: dict[str, Any] = {
        "scale": args.scale,
        "repeat": args.repeat,
        "datasets": args.kinds,
        "remotes": args.remotes,
        "warm_cache": True,
        "sync_before_each_command": not args.no_sync,
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "run_dir": str(run_dir),
    }
    try:
        with failures_recorded(bench.failures):
            meta |= bench.probe()
            if "s3" in args.remotes:
                bench.start_s3()
                meta["s3_endpoint"] = bench.endpoint
            print(
                f"dsv-bench-remote  run dir {run_dir}  scale {args.scale:g}  repeat {args.repeat}  "
                f"cpus {os.cpu_count()}  remotes {','.join(args.remotes)}"
            )
            print(f"  dsv: {meta.get('dsv_cmd')} {meta.get('dsv', '')}".rstrip())
            print(f"  dvc: {meta.get('dvc', 'skipped')}  dvc-s3 {meta.get('dvc-s3', '-')}")
            if bench.s3 is not None:
                print(f"  s3: moto server in this process at {bench.endpoint}, bucket {BUCKET}")
            print(
                "  all figures are WARM-CACHE: caches cannot be dropped here; "
                + ("sync(2) runs, untimed, before each command" if not args.no_sync else "no sync")
            )
            for kind in args.kinds:
                getattr(bench, kind)()
    finally:
        bench.stop()
        meta["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        bench.report(meta)
        drop_run_dir(run_dir, args.keep)
    return 1 if bench.failures else 0


if __name__ == "__main__":
    sys.exit(main())
