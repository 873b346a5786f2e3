"""The CLI through click's CliRunner: output, --json schemas, exit codes."""

from __future__ import annotations

import json
import os
from pathlib import Path

from dsv.errors import ExitCode

from .conftest import Invoke, write


def _commit(dsv: Invoke, msg: str) -> str:
    r = dsv("commit", "-m", msg, "--json")
    assert r.exit_code == 0, r.output
    return str(json.loads(r.output)["id"])


def test_status_json_schema(dsv: Invoke, work: Path) -> None:
    write(work / "a.txt", "a")
    r = dsv("status", "--json")
    assert r.exit_code == 0
    data = json.loads(r.output)
    assert data["clean"] is False
    assert data["added"] == ["a.txt"]
    assert data["head"] is None and data["branch"] == "main"
    _commit(dsv, "v1")
    data = json.loads(dsv("status", "--json").output)
    assert data["clean"] is True and len(data["head"]) == 32


def test_commit_prints_id_and_summary(dsv: Invoke, work: Path) -> None:
    write(work / "a.txt", "a" * 100)
    write(work / "b.txt", "b" * 50)
    r = dsv("commit", "-m", "first version", "--meta", "run=42")
    assert r.exit_code == 0
    first = r.output.splitlines()[0]
    assert first.startswith("[main ") and first.endswith("] first version")
    assert "files +2 -0 ~0" in r.output
    log = json.loads(dsv("log", "--json").output)
    assert log[0]["meta"] == {"run": "42"}
    assert log[0]["summary"]["files"] == {"added": 2, "removed": 0, "modified": 0, "total": 2}
    assert log[0]["summary"]["bytes"]["added"] == 150
    assert log[0]["id"].startswith(first[6:16])


def test_log_show_and_revisions(dsv: Invoke, work: Path) -> None:
    ids = []
    for i in range(3):
        write(work / "f.txt", f"version {i}\n")
        ids.append(_commit(dsv, f"v{i}"))
    log = json.loads(dsv("log", "--json").output)
    assert [c["id"] for c in log] == ids[::-1]
    assert log[0]["parents"] == [ids[1]]
    assert "HEAD -> main" in log[0]["refs"]
    assert len(json.loads(dsv("log", "-n", "2", "--json").output)) == 2
    oneline = dsv("log", "--oneline").output.splitlines()
    assert len(oneline) == 3 and oneline[2].endswith("v0")

    def rp(rev: str) -> str:
        r = dsv("rev-parse", rev)
        assert r.exit_code == 0, r.output
        return r.output.strip()

    assert rp("HEAD") == ids[2]
    assert rp("HEAD~1") == ids[1]
    assert rp("HEAD~2") == ids[0]
    assert rp("HEAD^") == ids[1]
    assert rp("main^^") == ids[0]
    assert rp(ids[0][:8]) == ids[0]
    short = dsv("rev-parse", "--short", "HEAD").output.strip()
    assert ids[2].startswith(short) and 10 <= len(short) < 32
    assert dsv("show", "HEAD~1:f.txt").output == "version 1\n"
    shown = dsv("show", ids[1][:12]).output
    assert f"commit {ids[1]}" in shown and "v1" in shown
    bad = dsv("rev-parse", "HEAD~5")
    assert bad.exit_code == ExitCode.NOT_FOUND


def test_ls_tree(dsv: Invoke, work: Path) -> None:
    write(work / "d/x.bin", b"\x00" * 10)
    write(work / "run.sh", "#!/bin/sh\n", mode=0o755)
    _commit(dsv, "v1")
    top = json.loads(dsv("ls-tree", "HEAD", "--json").output)
    assert [(e["path"], e["type"]) for e in top] == [("d", "dir"), ("run.sh", "file")]
    assert top[1]["mode"] == "0755"
    rec = json.loads(dsv("ls-tree", "HEAD", "-r", "--json").output)
    assert [(e["path"], e["size"]) for e in rec] == [("d/x.bin", 10), ("run.sh", 10)]
    sub = json.loads(dsv("ls-tree", "HEAD", "d", "--json").output)
    assert [e["path"] for e in sub] == ["d/x.bin"]


def test_branches_tags_and_checkout(dsv: Invoke, work: Path) -> None:
    write(work / "f.txt", "one")
    c1 = _commit(dsv, "v1")
    assert dsv("tag", "v1", "-m", "first release").exit_code == 0
    assert dsv("tag", "light").exit_code == 0
    assert dsv("branch", "dev").exit_code == 0
    write(work / "f.txt", "two")
    c2 = _commit(dsv, "v2")

    tags = json.loads(dsv("tag", "--json").output)
    assert {t["name"]: t["commit"] for t in tags} == {"light": c1, "v1": c1}
    annotated = next(t for t in tags if t["name"] == "v1")
    assert annotated["object"] != c1  # a tag object wraps the commit
    shown = json.loads(dsv("show", "v1", "--json").output)
    assert shown["id"] == c1 and shown["tag"]["message"] == "first release"

    r = dsv("checkout", "v1", "--json")
    assert r.exit_code == 0
    out = json.loads(r.output)
    assert out["commit"] == c1 and out["branch"] is None
    assert (work / "f.txt").read_text() == "one"
    assert json.loads(dsv("status", "--json").output)["branch"] is None

    r = dsv("checkout", "main", "--json")
    assert json.loads(r.output)["branch"] == "main"
    assert (work / "f.txt").read_text() == "two"

    branches = json.loads(dsv("branch", "--json").output)
    assert {b["name"]: (b["commit"], b["current"]) for b in branches} == {
        "dev": (c1, False),
        "main": (c2, True),
    }
    assert dsv("branch", "-d", "main").exit_code == ExitCode.CONFLICT  # checked out
    assert dsv("branch", "-d", "dev").exit_code == 0
    assert dsv("branch", "dev", "HEAD~1").exit_code == 0
    assert dsv("branch", "dev").exit_code == ExitCode.CONFLICT  # exists
    # the checked-out branch moves only with the working tree (dsv checkout)
    r = dsv("branch", "-f", "main", "HEAD~1")
    assert r.exit_code == ExitCode.CONFLICT and "it is checked out here" in r.output
    assert dsv("rev-parse", "main").output.strip() == c2
    assert dsv("branch", "-f", "main", "HEAD").exit_code == 0  # where it is: nothing moves
    assert dsv("branch", "-f", "dev", "HEAD").exit_code == 0
    assert dsv("rev-parse", "dev").output.strip() == c2
    assert dsv("branch", "bad..name").exit_code == ExitCode.USAGE
    assert dsv("tag", "-d", "light").exit_code == 0
    assert dsv("rev-parse", "light").exit_code == ExitCode.NOT_FOUND


def test_error_exit_codes_and_messages(dsv: Invoke, work: Path, tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    r = dsv("status", cwd=outside)
    assert r.exit_code == ExitCode.NOT_A_REPO
    assert "not a dsv repository" in r.output and "Traceback" not in r.output

    r = dsv("commit", "-m", "nothing")
    assert r.exit_code == ExitCode.CONFLICT and "nothing to commit" in r.output
    # an unborn current branch: listed first, without a commit (as documented)
    r = dsv("branch", "--json")
    assert r.exit_code == 0
    assert json.loads(r.output) == [{"name": "main", "commit": None, "current": True}]

    write(work / "f.txt", "one")
    _commit(dsv, "v1")
    write(work / "g.txt", "a change elsewhere")
    r = dsv("commit", "-m", "only f", "f.txt")
    assert r.exit_code == ExitCode.CONFLICT
    assert "dsv: error: nothing to commit in the given paths" in r.output
    assert "working tree clean" not in r.output
    os.unlink(work / "g.txt")
    r = dsv("checkout", "no-such-rev")
    assert r.exit_code == ExitCode.NOT_FOUND and "unknown revision" in r.output

    write(work / "f.txt", "two")
    _commit(dsv, "v2")
    write(work / "f.txt", "dirty")
    r = dsv("checkout", "HEAD~1")
    assert r.exit_code == ExitCode.CONFLICT and "f.txt" in r.output and "--force" in r.output
    assert (work / "f.txt").read_text() == "dirty"

    r = dsv("show", "HEAD:missing.txt")
    assert r.exit_code == ExitCode.NOT_FOUND

    r = dsv("commit", "-m", "x", "--meta", "novalue")
    assert r.exit_code == ExitCode.USAGE

    cfg = work / ".dsv" / "config"
    cfg.write_text(cfg.read_text().replace("format = 1", "format = 99"))
    r = dsv("status")
    assert r.exit_code == ExitCode.UNSUPPORTED and "format" in r.output


def test_gc_prunes_unreachable_data_and_keeps_the_rest(dsv: Invoke, work: Path) -> None:
    write(work / "keep.txt", "keep")
    _commit(dsv, "base")
    assert dsv("branch", "scratch").exit_code == 0
    assert dsv("checkout", "scratch").exit_code == 0
    write(work / "junk.bin", os.urandom(2 << 20))
    _commit(dsv, "junk")
    assert dsv("checkout", "main").exit_code == 0
    assert dsv("branch", "-d", "scratch").exit_code == 0

    r = json.loads(dsv("gc", "--json").output)  # reflogs still remember the junk
    assert r["bytes_after"] > 2 << 20
    r = json.loads(dsv("gc", "--prune-reflogs", "--json").output)
    assert r["bytes_after"] < 1 << 20 and r["objects_after"] < r["objects_before"]
    assert r["packs_after"] == 1
    fsck = dsv("fsck", "--json")
    assert fsck.exit_code == 0 and json.loads(fsck.output)["ok"] is True
    assert dsv("show", "HEAD:keep.txt").output == "keep"


def test_bad_revision_syntax_is_a_clean_error(dsv: Invoke, work: Path) -> None:
    write(work / "f.txt", "one")
    _commit(dsv, "v1")
    for bad in ("main^foo", "main~x", "main~1x", "^", "~1", "main:"):
        r = dsv("rev-parse", bad)
        assert r.exit_code == ExitCode.NOT_FOUND, (bad, r.output)
        assert "internal error" not in r.output


def test_checkout_prefers_branch_over_tag_of_same_name(dsv: Invoke, work: Path) -> None:
    write(work / "f.txt", "one")
    c1 = _commit(dsv, "v1")
    assert dsv("tag", "x").exit_code == 0
    write(work / "f.txt", "two")
    c2 = _commit(dsv, "v2")
    assert dsv("branch", "x").exit_code == 0
    out = json.loads(dsv("checkout", "x", "--json").output)
    assert out == {**out, "commit": c2, "branch": "x"}
    assert (work / "f.txt").read_text() == "two"
    assert json.loads(dsv("status", "--json").output)["clean"] is True
    out = json.loads(dsv("checkout", "refs/heads/main", "--json").output)
    assert out["branch"] == "main"
    assert c1 != c2


def test_blake3_repository_round_trip(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from dsv.cli import cli

    d = tmp_path / "b3"
    runner = CliRunner()

    def run(*args: str) -> str:
        r = runner.invoke(cli, ["-C", str(d), *args], catch_exceptions=False)
        assert r.exit_code == 0, r.output
        return r.output

    d.mkdir()
    assert "blake3" in run("init", "--hash", "blake3")
    payload = os.urandom(700_000)  # several chunks
    write(d / "big.bin", payload)
    c1 = json.loads(run("commit", "-m", "v1", "--json"))["id"]
    assert len(c1) == 64
    write(d / "big.bin", payload[:1000] + b"edit" + payload[1004:])
    run("commit", "-m", "v2")
    run("checkout", c1)
    assert (d / "big.bin").read_bytes() == payload
    assert json.loads(run("fsck", "--json"))["ok"] is True
    assert run("rev-parse", c1[:12]).strip() == c1


def test_remote_add_refuses_what_would_misfire(dsv: Invoke, work: Path, tmp_path: Path) -> None:
    """An empty URL (it became the repository itself), a name that cannot be part of a
    ref, S3 options on a directory remote: refused (exit 2), nothing configured."""
    for args, says in [
        (("e", ""), "empty remote URL"),
        (("bad..name", str(tmp_path / "r")), "invalid remote name"),
        (("loc", str(tmp_path / "r"), "--endpoint-url", "http://h"), "only for s3:// remotes"),
    ]:
        r = dsv("remote", "add", *args)
        assert r.exit_code == ExitCode.USAGE and says in r.output, (args, r.output)
    assert json.loads(dsv("remote", "list", "--json").output) == []
    assert "[remote" not in (work / ".dsv" / "config").read_text()
    assert dsv("remote", "add", "ok.name-1", str(tmp_path / "r")).exit_code == 0


def test_ls_remote_says_what_it_could_not_find(work: Path, tmp_path: Path) -> None:
    """An unknown name is not looked up as a file (real dsv processes)."""
    from .conftest import run_dsv

    r = run_dsv("ls-remote", "nosuch", cwd=work)
    assert r.returncode == ExitCode.NOT_FOUND
    assert b"no remote named 'nosuch', and no directory 'nosuch'" in r.stderr
    outside = tmp_path / "outside"
    outside.mkdir()
    r = run_dsv("ls-remote", cwd=outside)  # origin, outside any repository
    assert r.returncode == ExitCode.NOT_FOUND and b"'origin' is not a directory" in r.stderr
    (outside / "empty").mkdir()
    r = run_dsv("ls-remote", str(outside / "empty"), cwd=outside)
    assert r.returncode == ExitCode.NOT_FOUND
    assert b"is not a dsv remote (no dsv-remote.json)" in r.stderr


def test_clone_rev_with_ancestry_and_a_file_in_the_way(tmp_path: Path) -> None:
    """clone --rev takes the remote's branch or tag with ~N/^ after it; a regular file
    where the clone should go is refused as such (real dsv processes)."""
    from .conftest import run_dsv

    work = tmp_path / "w"
    assert run_dsv("init", str(work), cwd=tmp_path).returncode == 0
    ids = []
    for v in ("a", "b", "c"):
        (work / "f").write_text(v)
        assert run_dsv("commit", "-q", "-m", v, cwd=work).returncode == 0
        ids.append(run_dsv("rev-parse", "HEAD", cwd=work).stdout.decode().strip())
    assert run_dsv("tag", "v2", "HEAD~1", cwd=work).returncode == 0
    assert run_dsv("remote", "add", "origin", str(tmp_path / "rem"), cwd=work).returncode == 0
    assert run_dsv("push", "-q", "origin", "main", "v2", cwd=work).returncode == 0
    for rev, want in (("main~2", ids[0]), ("v2^", ids[0]), ("main^1", ids[1])):
        dest = tmp_path / f"c-{rev}"
        r = run_dsv("clone", "-q", str(tmp_path / "rem"), str(dest), "--rev", rev, cwd=tmp_path)
        assert r.returncode == 0, (rev, r.stderr)
        assert run_dsv("rev-parse", "HEAD", cwd=dest).stdout.decode().strip() == want
        assert (dest / "f").read_text() == "abc"[ids.index(want)]
    (tmp_path / "afile").write_text("mine")
    r = run_dsv("clone", str(tmp_path / "rem"), str(tmp_path / "afile"), cwd=tmp_path)
    assert r.returncode == ExitCode.CONFLICT and b"exists and is not a directory" in r.stderr
    assert (tmp_path / "afile").read_text() == "mine"
