"""Remotes: where they are configured, what they look like, and how objects move.

A remote mirrors the store (layout and write order in docs/format.md, "Remotes")::

    dsv-remote.json                 {"format": 1, "hash": "xxh3-128"}
    packs/pack-<checksum>.pack      packs, as in .dsv/objects/pack
    packs/pack-<checksum>.idx       written after their pack: an index makes a pack visible
    refs/heads/<branch>             "<hex id>\\n", moved by compare-and-swap
    refs/tags/<tag>

Push uploads packs of what the remote lacks (local packs as they are where
they hold nothing else), then their indexes in dependency order (chunks before
the files and trees that name them, trees before commits), then moves refs
with a conditional write.  Whatever prefix of that sequence a
crash leaves behind, an object visible on the remote has everything it names
visible too, and no ref names anything missing.
"""

from __future__ import annotations

import json
import re
import shutil
import threading

from dsv.backends import Backend, KeyNotFoundError, PreconditionFailedError, Stats, open_backend
from dsv.backends.retry import RetryingBackend
from dsv.errors import (
    BadNameError,
    ConflictError,
    FormatError,
    NotFoundError,
    UnsupportedFormatError,
)
from dsv.records import Record
from dsv.refs import check_ref_name
from dsv.repo import Repository
from dsv.store.pack import Entry, PackFile

REMOTE_FORMAT = 1
FORMAT_KEY = "dsv-remote.json"
PACKS = "packs/"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
REMOTE_OPTIONS = ("endpoint-url", "region", "profile")


def _section(name: str) -> str:
    return f'remote "{name}"'


class RemoteConfig(Record):
    __slots__ = ("name", "options", "url")

    def __init__(self, name: str, url: str, options: dict[str, str] | None = None) -> None:
        self.name = name
        self.url = url
        self.options: dict[str, str] = {} if options is None else options


def list_remotes(repo: Repository) -> list[RemoteConfig]:
    out = []
    for sec in repo.config.sections():
        m = re.fullmatch(r'remote "(.+)"', sec)
        if m:
            items = repo.config.items(sec)
            url = items.pop("url", "")
            out.append(RemoteConfig(m.group(1), url, items))
    return sorted(out, key=lambda r: r.name)


def get_remote_config(repo: Repository, name: str | None) -> RemoteConfig:
    remotes = list_remotes(repo)
    if name is None:
        if not remotes:
            raise NotFoundError("no remote configured", hint="add one: dsv remote add origin URL")
        origin = [r for r in remotes if r.name == "origin"]
        if origin:
            return origin[0]
        if len(remotes) == 1:
            return remotes[0]
        raise NotFoundError("several remotes configured; name one (dsv remote list)")
    for r in remotes:
        if r.name == name:
            return r
    raise NotFoundError(f"no remote named {name!r}", hint="see: dsv remote list")


def add_remote(repo: Repository, name: str, url: str, options: dict[str, str]) -> RemoteConfig:
    if not _NAME.match(name):
        raise BadNameError(f"invalid remote name {name!r} (letters, digits, '.', '_', '-')")
    if any(r.name == name for r in list_remotes(repo)):
        raise ConflictError(f"remote {name!r} already exists")
    if not url:
        raise BadNameError("empty remote URL")
    repo.config.set(_section(name), "url", url)
    for k, v in options.items():
        if v:
            repo.config.set(_section(name), k, v)
    repo.config.save()
    return RemoteConfig(name, url, {k: v for k, v in options.items() if v})


def remove_remote(repo: Repository, name: str) -> None:
    get_remote_config(repo, name)
    repo.config.unset(_section(name))
    repo.config.save()
    for ref in list(repo.refs.list_refs(f"refs/remotes/{name}/")):
        repo.refs.update(ref, None, message="remote removed")
    shutil.rmtree(repo.dsv_dir / "remotes" / name, ignore_errors=True)


class Remote:
    """One remote: its backend (with retries), refs, and a local cache of its pack indexes."""

    def __init__(
        self, repo: Repository, cfg: RemoteConfig, backend: Backend | None = None, jobs: int = 8
    ) -> None:
        self.repo = repo
        self.name = cfg.name
        self.url = cfg.url
        self.backend = backend or RetryingBackend(open_backend(cfg.url, cfg.options))
        self.jobs = max(1, jobs)
        self.cache = repo.dsv_dir / "remotes" / cfg.name / "packs"
        self._packs: dict[str, PackFile] | None = None
        self._last: str | None = None
        self._lock = threading.Lock()

    @property
    def stats(self) -> Stats:
        return self.backend.stats

    # ------------------------------------------------------------------ format

    def check_format(self, create: bool) -> None:
        """Refuse a remote of another format or hash; create the marker on first push."""
        algo = self.repo.algo.name
        try:
            data = self.backend.get(FORMAT_KEY)
        except KeyNotFoundError:
            if not create:
                raise NotFoundError(
                    f"{self.url} is not a dsv remote (no {FORMAT_KEY})",
                    hint="push to it first, or check the URL",
                ) from None
            body = json.dumps({"format": REMOTE_FORMAT, "hash": algo}, sort_keys=True).encode()
            try:
                self.backend.put_if_absent(FORMAT_KEY, body + b"\n")
            except PreconditionFailedError:
                pass  # someone else created it: check theirs
            else:
                return
            data = self.backend.get(FORMAT_KEY)
        try:
            info = json.loads(data)
            fmt, rhash = info["format"], info["hash"]
        except (ValueError, KeyError, TypeError):
            raise FormatError(f"{self.url}: malformed {FORMAT_KEY}") from None
        if fmt != REMOTE_FORMAT:
            raise UnsupportedFormatError(
                f"{self.url}: remote format {fmt!r} is not supported (this dsv reads {REMOTE_FORMAT})"
            )
        if rhash != algo:
            raise UnsupportedFormatError(
                f"{self.url} stores {rhash} ids; this repository uses {algo}"
            )

    def remote_hash(self) -> str:
        """The id algorithm a remote uses (for clone, before a repository exists)."""
        data = self.backend.get(FORMAT_KEY)
        try:
            return str(json.loads(data)["hash"])
        except (ValueError, KeyError, TypeError):
            raise FormatError(f"{self.url}: malformed {FORMAT_KEY}") from None

    # ------------------------------------------------------------------ refs

    def refs(self) -> dict[str, tuple[bytes, str]]:
        """Remote refs: full name -> (id, version tag for compare-and-swap)."""
        out: dict[str, tuple[bytes, str]] = {}
        ds = self.repo.algo.digest_size
        for key in self.backend.list("refs/"):
            if not (key.startswith("refs/heads/") or key.startswith("refs/tags/")):
                continue
            name = key.split("/", 2)[2]
            try:
                check_ref_name(name)
            except BadNameError:
                continue  # not something this dsv would have written: ignore
            try:
                data, tag = self.backend.get_with_tag(key)
            except KeyNotFoundError:
                continue  # deleted meanwhile
            text = data.decode("ascii", "replace").strip()
            if len(text) != ds * 2 or not re.fullmatch(r"[0-9a-f]+", text):
                raise FormatError(f"{self.url}: ref {key} is malformed")
            out[key] = (bytes.fromhex(text), tag)
        return dict(sorted(out.items()))

    def set_ref(self, ref: str, new: bytes, old: tuple[bytes, str] | None) -> None:
        """Compare-and-swap a remote ref; a lost race raises RejectedError."""
        body = (new.hex() + "\n").encode()
        try:
            if old is None:
                self.backend.put_if_absent(ref, body)
            else:
                self.backend.put_if_match(ref, body, old[1])
        except PreconditionFailedError:
            # A retried write that did land looks like a lost race: check.
            try:
                data = self.backend.get(ref)
            except KeyNotFoundError:
                data = b""
            if data.strip() == new.hex().encode():
                return
            from dsv.errors import RejectedError

            raise RejectedError(
                f"rejected: {ref} on {self.url} was updated by someone else (fetch first)",
                hint="run 'dsv pull' (or 'dsv fetch'), then push again",
            ) from None

    # ------------------------------------------------------------------ indexes

    def packs(self, refresh: bool = False) -> dict[str, PackFile]:
        """The remote's visible packs (those with an index), their indexes cached locally."""
        with self._lock:
            if self._packs is not None and not refresh:
                return self._packs
            listing = self.backend.list(PACKS)
            names = {k[len(PACKS) : -4] for k in listing if k.endswith(".idx")}
            self.cache.mkdir(parents=True, exist_ok=True)
            have = {p.name[:-4] for p in self.cache.glob("*.idx")}
            for gone in have - names:
                (self.cache / f"{gone}.idx").unlink(missing_ok=True)
            from dsv.atomic import write_atomic

            for name in sorted(names - have):
                data = self.backend.get(f"{PACKS}{name}.idx")
                write_atomic(self.cache / f"{name}.idx", data, durable=False)
            packs: dict[str, PackFile] = {}
            for name in sorted(names):
                try:
                    packs[name] = PackFile(self.cache / f"{name}.pack", self.repo.algo)
                except (FormatError, UnsupportedFormatError):
                    # a damaged cached copy: fetch it again once
                    data = self.backend.get(f"{PACKS}{name}.idx")
                    write_atomic(self.cache / f"{name}.idx", data, durable=False)
                    packs[name] = PackFile(self.cache / f"{name}.pack", self.repo.algo)
                if packs[name].pack_checksum.hex() != name.removeprefix("pack-"):
                    raise FormatError(f"{self.url}: index {name}.idx belongs to another pack")
            self._packs = packs
            self._listing = listing
            return packs

    def cache_index(self, name: str, data: bytes) -> None:
        """Keep a copy of an index this process uploaded (saves downloading it back)."""
        from dsv.atomic import write_atomic

        self.cache.mkdir(parents=True, exist_ok=True)
        write_atomic(self.cache / name, data, durable=False)
        with self._lock:
            self._packs = None

    def listing(self) -> dict[str, int]:
        self.packs()
        return self._listing

    def has(self, oid: bytes) -> bool:
        return self._find(oid) is not None

    def _find(self, oid: bytes) -> tuple[str, Entry] | None:
        # Objects are looked up in the order a push wrote them, so the pack of
        # the last hit is tried first: one search per object, not one per pack.
        packs = self.packs()
        last = self._last
        if last is not None and last in packs:
            e = packs[last].find(oid)
            if e is not None:
                return last, e
        for name, p in packs.items():
            e = p.find(oid)
            if e is not None:
                self._last = name
                return name, e
        return None

    def locate(self, oid: bytes) -> tuple[str, int, int, int, int, int] | None:
        """(pack name, offset, stored length, raw length, kind, codec) of an object."""
        hit = self._find(oid)
        if hit is None:
            return None
        name, e = hit
        return name, e.offset, e.stored_len, e.raw_len, e.kind, e.codec

    def close(self) -> None:
        for p in (self._packs or {}).values():
            p.close()
        self.backend.close()


def open_remote(repo: Repository, name: str | None, jobs: int = 8) -> Remote:
    return Remote(repo, get_remote_config(repo, name), jobs=jobs)


__all__ = [
    "Remote",
    "RemoteConfig",
    "add_remote",
    "get_remote_config",
    "list_remotes",
    "open_remote",
    "remove_remote",
]
