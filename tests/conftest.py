"""Shared fixtures: repositories on real disk, the CLI in-process and as a real process."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from dsv.cli import cli
from dsv.repo import Repository

SHARED = Path(__file__).resolve().parents[2] / "shared"


@pytest.fixture(autouse=True)
def _identity(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DSV_AUTHOR_NAME", "Test User")
    monkeypatch.setenv("DSV_AUTHOR_EMAIL", "test@example.com")
    monkeypatch.setenv("DSV_LOCK_TIMEOUT", "5")


@pytest.fixture
def work(tmp_path: Path) -> Path:
    """An empty directory initialised as a repository."""
    d = tmp_path / "data"
    Repository.init(d)
    return d


@pytest.fixture
def repo(work: Path) -> Iterator[Repository]:
    r = Repository(work)
    yield r
    r.close()


Invoke = Callable[..., Result]


@pytest.fixture
def dsv(work: Path) -> Invoke:
    """Run the CLI in-process (CliRunner) inside ``work``: ``dsv("status", "--json")``."""
    runner = CliRunner()

    def run(*args: str, cwd: Path | None = None, input: bytes | None = None) -> Result:
        return runner.invoke(
            cli, ["-C", str(cwd or work), *args], input=input, catch_exceptions=False
        )

    return run


def run_dsv(
    *args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[bytes]:
    """Run a real ``dsv`` process (``python -m dsv``)."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "dsv", *args],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        timeout=timeout,
    )


def assert_status_does_not_import(
    cwd: Path, module: str, argv: tuple[str, ...] = ("status",)
) -> None:
    """``dsv status`` (or ``dsv ARGV``) in a fresh process exits 0 without importing ``module``.

    A module the interpreter loaded before dsv (a ``.pth`` file of the
    environment, say) is not dsv's doing: then only the exit status is checked.
    """
    probe = (
        f"import sys\nbefore = {module!r} in sys.modules\nfrom dsv.cli import main\n"
        f"try:\n    main({list(argv)!r})\nexcept SystemExit as e:\n    code = e.code\n"
        f"assert before or {module!r} not in sys.modules, '{module} imported'\n"
        "print('exit', code)\n"
    )
    r = subprocess.run([sys.executable, "-c", probe], cwd=cwd, capture_output=True, timeout=120)
    assert r.returncode == 0, r.stderr.decode()
    assert r.stdout.decode().endswith("exit 0\n")


def write(path: Path, data: bytes | str, mode: int | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    if mode is not None:
        path.chmod(mode)
    return path


def snapshot(root: Path) -> dict[str, tuple[bytes, int] | str]:
    """Every file (bytes, permission bits) and symlink (target) under root, except .dsv."""
    out: dict[str, tuple[bytes, int] | str] = {}
    for dirpath, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if d != ".dsv"]
        for name in dirs + files:
            p = Path(dirpath) / name
            rel = p.relative_to(root).as_posix()
            if p.is_symlink():
                out[rel] = "->" + os.readlink(p)
            elif p.is_file():
                out[rel] = (p.read_bytes(), p.stat().st_mode & 0o7777)
    return out


@pytest.fixture(scope="session")
def s3_server() -> Iterator[object]:
    """A moto S3 server (server mode, real HTTP) for the whole session."""
    from .s3server import CountingMotoServer, fake_aws_env

    fake_aws_env()
    srv = CountingMotoServer()
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture
def s3_bucket(s3_server: object) -> str:
    """A fresh, empty bucket on the moto server; returns its name."""
    import uuid

    from .s3server import make_bucket

    name = f"b{uuid.uuid4().hex[:16]}"
    make_bucket(s3_server.endpoint, name)  # type: ignore[attr-defined]
    return name
