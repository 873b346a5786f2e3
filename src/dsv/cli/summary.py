"""Commit summaries as text lines (no click: ``dsv commit`` prints them without it)."""

from __future__ import annotations

# typing is imported for the type checker only: `dsv commit` never loads it
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def n_of(count: int, noun: str) -> str:
    return f"{count:,} {noun}{'' if count == 1 else 's'}"


def signed(n: int) -> str:
    return f"+{n:,}" if n > 0 else (f"{n:,}" if n < 0 else "0")


def more(n: int, what: str) -> str:
    return f"… {n:,} more {what}"


def summary_line(summary: dict[str, Any]) -> str:
    from dsv.progress import human_bytes

    files = summary.get("files", {})
    b = summary.get("bytes", {})
    parts = [
        f"files +{files.get('added', 0):,} -{files.get('removed', 0):,} ~{files.get('modified', 0):,}"
        f" ({files.get('total', 0):,} in all)",
        f"bytes +{human_bytes(b.get('added', 0))} -{human_bytes(b.get('removed', 0))}",
    ]
    if "stored_bytes" in summary:
        parts.append(f"stored {human_bytes(summary['stored_bytes'])}")
    return ", ".join(parts)


def changelog_lines(summary: dict[str, Any]) -> list[str]:
    """The data changelog of a commit summary, one line per table and label source (bounded)."""
    out: list[str] = []
    if not isinstance(summary, dict):
        return out
    moved = summary.get("moved")
    if isinstance(moved, int) and moved:
        out.append(f"moved {n_of(moved, 'file')} (same content, new path)")
    tables = summary.get("tables")
    if isinstance(tables, dict):
        for path, t in list(tables.items())[:10]:
            if isinstance(t, dict):
                out.append(f"{path}: {summary_table(t)}")
        extra = summary.get("tables_more")
        if isinstance(extra, int) and extra:
            out.append(more(extra, "tables"))
    labels = summary.get("labels")
    if isinstance(labels, list):
        for ld in labels[:10]:
            if isinstance(ld, dict):
                out.append(summary_labels(ld))
                classes = summary_classes(ld)
                if classes:
                    out.append(f"  {classes}")
    return out


def summary_classes(ld: dict[str, Any], limit: int = 6) -> str:
    """``classes: dog 4 → 7 (+3), …``: the stored class counts, largest change first."""
    cls = ld.get("classes")
    if not isinstance(cls, dict):
        return ""
    rows = [
        (k, v[0], v[1])
        for k, v in cls.items()
        if isinstance(v, list) and len(v) == 2 and all(isinstance(x, int) for x in v)
    ]
    changed = sorted((r for r in rows if r[1] != r[2]), key=lambda r: (-abs(r[2] - r[1]), r[0]))
    if not changed:
        return ""
    shown = ", ".join(f"{k} {a:,} → {b:,} ({signed(b - a)})" for k, a, b in changed[:limit])
    return f"classes: {shown}{', …' if len(changed) > limit else ''}"


def summary_table(t: dict[str, Any]) -> str:
    r = t.get("rows") or {}
    mod = f" ~{r['modified']:,}" if isinstance(r.get("modified"), int) else ""
    text = (
        f"rows +{r.get('added', 0):,} -{r.get('removed', 0):,}{mod} ({r.get('total', 0):,} in all)"
    )
    if t.get("status") in ("added", "removed"):
        text += f", table {t['status']}"
    cols = t.get("columns")
    if isinstance(cols, dict) and cols:
        text += "; " + ", ".join(f"{c} ~{n:,}" for c, n in list(cols.items())[:4])
    sch = t.get("schema")
    if isinstance(sch, dict):
        bits = [f"+{n}" for n in sch.get("added", [])]
        bits += [f"-{n}" for n in sch.get("removed", [])]
        bits += [f"~{n}" for n in sch.get("retyped", [])]
        if bits:
            text += "; columns " + " ".join(bits)
    return text


def summary_where(ld: dict[str, Any]) -> str:
    if ld.get("kind") == "folders":
        return f"labels in {ld.get('path') or '.'}/"
    return f"labels in {ld.get('path')} ({ld.get('column')})"


def summary_labels(ld: dict[str, Any]) -> str:
    bits = []
    if isinstance(ld.get("relabeled"), int) and (ld["relabeled"] or ld.get("transitions")):
        bits.append(f"{ld['relabeled']:,} relabelled")
    bits.append(f"+{ld.get('added', 0):,} -{ld.get('removed', 0):,} {ld.get('items', 'items')}")
    tr = [x for x in ld.get("transitions") or [] if isinstance(x, list) and len(x) == 3]
    if tr:
        more = ", …" if len(tr) > 3 or ld.get("transitions_more") else ""
        bits.append(", ".join(f"{a} → {b} {n:,}" for a, b, n in tr[:3]) + more)
    return f"{summary_where(ld)}: " + "; ".join(bits)
