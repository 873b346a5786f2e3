"""Repository configuration in ``.dsv/config`` (INI, as git users expect).

``core.format`` is the repository format version; a dsv that does not know
it refuses to touch the repository.  ``core.hash`` and ``[chunking]`` are
fixed at ``dsv init``.
"""

from __future__ import annotations

import configparser
import io
from pathlib import Path

from dsv.atomic import write_atomic
from dsv.chunking import ChunkParams
from dsv.errors import FormatError, UnsupportedFormatError, io_error
from dsv.hashing import HashAlgo, get_algo

REPO_FORMAT = 1


class Config:
    """A parsed ``.dsv/config``; ``save`` writes it back atomically."""

    def __init__(self, path: Path, parser: configparser.ConfigParser) -> None:
        self.path = path
        self._p = parser

    @classmethod
    def new(cls, path: Path, hash_name: str, chunking: ChunkParams) -> Config:
        p = configparser.ConfigParser(interpolation=None)
        p["core"] = {"format": str(REPO_FORMAT), "hash": get_algo(hash_name).name}
        p["chunking"] = {
            "min": str(chunking.min),
            "avg": str(chunking.avg),
            "max": str(chunking.max),
        }
        return cls(path, p)

    @classmethod
    def load(cls, path: Path) -> Config:
        p = configparser.ConfigParser(interpolation=None)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise io_error("read config", path, exc) from exc
        except UnicodeDecodeError:
            raise FormatError(f"{path}: not valid UTF-8") from None
        try:
            p.read_string(text, source=str(path))
        except configparser.Error as exc:
            raise FormatError(f"{path}: not a valid config file ({exc.message})") from None
        cfg = cls(path, p)
        fmt = cfg.get("core", "format")
        if fmt != str(REPO_FORMAT):
            raise UnsupportedFormatError(
                f"repository format {fmt!r} is not supported by this dsv (it reads {REPO_FORMAT})",
                hint="upgrade dsv",
            )
        return cfg

    def save(self) -> None:
        buf = io.StringIO()
        self._p.write(buf)
        write_atomic(self.path, buf.getvalue().encode())

    def get(self, section: str, key: str, default: str | None = None) -> str | None:
        return self._p.get(section, key, fallback=default)

    def set(self, section: str, key: str, value: str) -> None:
        if not self._p.has_section(section):
            self._p.add_section(section)
        self._p.set(section, key, value)

    def unset(self, section: str, key: str | None = None) -> bool:
        if not self._p.has_section(section):
            return False
        if key is None:
            return self._p.remove_section(section)
        return self._p.remove_option(section, key)

    def sections(self) -> list[str]:
        return self._p.sections()

    def items(self, section: str) -> dict[str, str]:
        return dict(self._p.items(section)) if self._p.has_section(section) else {}

    @property
    def algo(self) -> HashAlgo:
        return get_algo(self.get("core", "hash", "xxh3-128") or "xxh3-128")

    @property
    def chunk_params(self) -> ChunkParams:
        def num(key: str, default: int) -> int:
            raw = self.get("chunking", key, str(default))
            try:
                return int(raw or default)
            except ValueError:
                raise FormatError(f"{self.path}: chunking.{key} is not a number") from None

        d = ChunkParams()
        return ChunkParams(num("min", d.min), num("avg", d.avg), num("max", d.max)).validate()
