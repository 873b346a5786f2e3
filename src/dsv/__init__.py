"""dsv: git-style versioning for datasets.

Content-defined chunking and packs store each version's new bytes only;
commits carry a summary of what changed; every read is verified.
"""

from __future__ import annotations

__version__ = "0.1.0"
