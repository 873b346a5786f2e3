"""dsv: git-style versioning for datasets.

Content-defined chunking and packs store each version's new bytes only;
commits carry a summary of what changed; every read is verified.
"""

from __future__ import annotations

__version__ = "0.1.0"

# The training API (docs/training.md), imported on first use: `import dsv`
# and `dsv status` stay as fast as they were.
_LAZY = {
    "Repo": "dsv.api.training",
    "open": "dsv.api.training",
    "read_table": "dsv.api.training",
    "lineage": "dsv.api.training",
    "DsvFileSystem": "dsv.api.fs",
}
__all__ = ["DsvFileSystem", "Repo", "__version__", "lineage", "open", "read_table"]


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'dsv' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
