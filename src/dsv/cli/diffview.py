"""Text output of ``dsv diff``, ``dsv changelog`` and ``dsv label``, and the changelog lines of ``log``/``show``.

For people: aligned columns, largest changes first, bounded length (``--json``
has everything), colour only on a terminal.  Imported only by the commands
that print these, so that ``dsv status`` does not load it.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterable, Sequence
from typing import Any

import click

from dsv.cli.app import _emit_json, _fmt_time
from dsv.cli.summary import changelog_lines, more, n_of, signed, summary_labels, summary_line

# Bounds of the text output.
FILE_LINES = 20
CLASS_LINES = 12
TRANSITION_LINES = 10
SPLIT_LINES = 8
VALUE_CHARS = 40


# ---------------------------------------------------------------------- formatting helpers


def _use_color() -> bool:
    return sys.stdout.isatty() and not os.environ.get("NO_COLOR")


def _c(text: str, fg: str | None, color: bool, bold: bool = False) -> str:
    return click.style(text, fg=fg, bold=bold or None) if color and (fg or bold) else text


def _human(n: int) -> str:
    from dsv.progress import human_bytes

    return human_bytes(n)


def _val(v: Any) -> str:
    s = "null" if v is None else str(v)
    return s if len(s) <= VALUE_CHARS else s[: VALUE_CHARS - 1] + "…"


def _cls(v: Any) -> str:
    return "(null)" if v is None else str(v)


def _align(rows: Sequence[Sequence[str]], right: Iterable[int] = ()) -> list[str]:
    """Rows of cells as aligned text lines (columns in ``right`` aligned right)."""
    if not rows:
        return []
    r = set(right)
    widths = [max(click.unstyle(row[i]).__len__() for row in rows) for i in range(len(rows[0]))]
    out = []
    for row in rows:
        cells = []
        for i, cell in enumerate(row):
            pad = widths[i] - len(click.unstyle(cell))
            cells.append(" " * pad + cell if i in r else cell + " " * pad)
        out.append("  ".join(cells).rstrip())
    return out


# ---------------------------------------------------------------------- dsv diff


def print_name_status(d: Any) -> None:
    f = d.files
    lines: list[tuple[str, str]] = [(p, f"A\t{p}") for p, _ in f.added]
    lines += [(p, f"D\t{p}") for p, _ in f.removed]
    lines += [(p, f"M\t{p}") for p, _, _ in f.modified]
    lines += [(a, f"R\t{a}\t{b}") for a, b, _ in f.moved]
    for _, line in sorted(lines):
        click.echo(line)


def _files_line(f: Any, color: bool) -> str:
    parts = [
        _c(f"+{len(f.added):,}", "green", color),
        _c(f"-{len(f.removed):,}", "red", color),
        _c(f"~{len(f.modified):,}", "yellow", color),
    ]
    moved = f", {len(f.moved):,} moved" if f.moved else ""
    return (
        f"files {' '.join(parts)}{moved}"
        f" (+{_human(f.bytes_added)} -{_human(f.bytes_removed)}), {f.unchanged:,} unchanged"
    )


def _rows_cell(t: Any, color: bool) -> str:
    mod = "" if t.modified is None else " " + _c(f"~{t.modified:,}", "yellow", color)
    return _c(f"+{t.added:,}", "green", color) + " " + _c(f"-{t.removed:,}", "red", color) + mod


def _table_line(t: Any, color: bool) -> str:
    bits = [f"rows {_rows_cell(t, color)}"]
    if t.rows_old is not None and t.rows_new is not None:
        bits.append(f"{t.rows_old:,} -> {t.rows_new:,} rows")
    elif t.rows_new is not None:
        bits.append(f"new table, {t.rows_new:,} rows")
    elif t.rows_old is not None:
        bits.append(f"table removed, {t.rows_old:,} rows")
    if t.columns:
        top = sorted(t.columns.items(), key=lambda kv: (-kv[1], kv[0]))
        shown = ", ".join(f"{c} {n:,}" for c, n in top[:4])
        bits.append(f"changed values: {shown}{', …' if len(top) > 4 else ''}")
    if t.schema_changed:
        bits.append(
            "schema "
            + " ".join(
                [f"+{n}" for n, _ in t.schema_added]
                + [f"-{n}" for n, _ in t.schema_removed]
                + [f"~{n}" for n, _, _ in t.schema_retyped]
            )
        )
    if t.modified is None and t.key is None and t.status == "modified":
        bits.append("no key: compared as a multiset of rows")
    return "; ".join(bits)


def _label_title(ld: Any) -> str:
    if ld.kind == "folders":
        where = f"class folders under {ld.path or '.'}/"
        if ld.split_by:
            where += " (by split folder)"
        return where
    split = f", split column {ld.split_by}" if ld.split_by else ""
    return f"column {ld.column} of {ld.path}{split}"


def _label_line(ld: Any, color: bool) -> str:
    t = ld.total
    bits = []
    if ld.keyed:
        bits.append(f"{t.relabeled:,} relabelled")
    bits.append(
        _c(f"+{sum(t.added.values()):,}", "green", color)
        + " "
        + _c(f"-{sum(t.removed.values()):,}", "red", color)
        + f" {ld.items}"
    )
    top = t.top_transitions()
    if top:
        shown = ", ".join(f"{_cls(a)} → {_cls(b)} {n:,}" for a, b, n in top[:3])
        bits.append(shown + (", …" if len(top) > 3 else ""))
    return "; ".join(bits)


def print_stat(d: Any) -> None:
    color = _use_color()
    click.echo(_files_line(d.files, color))
    for t in d.tables:
        click.echo(f"{t.path}: {_table_line(t, color)}")
    for ld in d.labels:
        click.echo(f"labels, {_label_title(ld)}: {_label_line(ld, color)}")


def _print_files(f: Any, color: bool) -> None:
    click.echo(_c(_files_line(f, color), None, color, bold=True))
    rows: list[tuple[int, list[str]]] = []
    for p, o, n in f.modified:
        rows.append(
            (
                abs(n.size - o.size) or n.size,
                [
                    _c("M", "yellow", color),
                    p,
                    f"{_human(o.size)} -> {_human(n.size)}",
                ],
            )
        )
    for a, b, e in f.moved:
        rows.append((e.size, [_c("R", "cyan", color), f"{a} -> {b}", _human(e.size)]))
    for p, e in f.added:
        rows.append((e.size, [_c("A", "green", color), p, _human(e.size)]))
    for p, e in f.removed:
        rows.append((e.size, [_c("D", "red", color), p, _human(e.size)]))
    rows.sort(key=lambda r: -r[0])
    for line in _align([r for _, r in rows[:FILE_LINES]], right=[2]):
        click.echo("  " + line)
    if len(rows) > FILE_LINES:
        click.echo("  " + more(len(rows) - FILE_LINES, "paths (dsv diff --name-status lists all)"))


def _print_table(t: Any, color: bool) -> None:
    key = f", key {t.key}" if t.key else ", no key"
    click.echo("")
    click.echo(_c(f"table {t.path} ({t.format}{key})", None, color, bold=True))
    click.echo(f"  {_table_line(t, color)}")
    if t.schema_changed:
        for n, ty in t.schema_added:
            click.echo(f"  column added:   {n} ({ty})")
        for n, ty in t.schema_removed:
            click.echo(f"  column removed: {n} ({ty})")
        for n, a, b in t.schema_retyped:
            click.echo(f"  column retyped: {n} ({a} -> {b})")
    kname = t.key or "row"
    lines: list[list[str]] = []
    for s in t.samples_modified:
        ch = ", ".join(f"{c}: {_val(a)} -> {_val(b)}" for c, (a, b) in s["changes"].items())
        lines.append([_c("~", "yellow", color), f"{kname}={_val(s['key'])}", ch])
    for sign, fg, samples in (("+", "green", t.samples_added), ("-", "red", t.samples_removed)):
        for row in samples:
            k = f"{kname}={_val(row.get(t.key))}" if t.key else ""
            rest = ", ".join(f"{c}={_val(v)}" for c, v in row.items() if c != t.key)
            lines.append([_c(sign, fg, color), k, rest])
    for line in _align(lines):
        click.echo("  " + line)


def _matrix(st: Any, width: int) -> list[str] | None:
    """The transition matrix as text lines, if it fits in ``width`` columns."""
    olds = sorted({a for a, _ in st.transitions}, key=_cls)
    news = sorted({b for _, b in st.transitions}, key=_cls)
    if len(olds) > 12 or len(news) > 12:
        return None
    rows = [["old \\ new", *[_cls(b) for b in news]]]
    for a in olds:
        rows.append(
            [
                _cls(a),
                *[f"{st.transitions[(a, b)]:,}" if st.transitions[(a, b)] else "." for b in news],
            ]
        )
    lines = _align(rows, right=range(1, len(news) + 1))
    if max(len(x) for x in lines) + 4 > width:
        return None
    return lines


def _print_labels(ld: Any, color: bool) -> None:
    t = ld.total
    click.echo("")
    click.echo(_c(f"labels: {_label_title(ld)}", None, color, bold=True))
    click.echo(f"  {_label_line(ld, color)}")
    if not ld.keyed:
        click.echo("  (no key: a changed label shows as a removed and an added row)")
    top = t.top_transitions()
    if top:
        width = shutil.get_terminal_size((100, 24)).columns
        mat = _matrix(t, width)
        if mat is not None:
            click.echo("  transitions (rows: old, columns: new):")
            for line in mat:
                click.echo("    " + line)
        else:
            click.echo("  transitions (old -> new):")
            rows = [[_cls(a), "->", _cls(b), f"{n:,}"] for a, b, n in top[:TRANSITION_LINES]]
            for line in _align(rows, right=[3]):
                click.echo("    " + line)
            if len(top) > TRANSITION_LINES:
                click.echo("    " + more(len(top) - TRANSITION_LINES, "transitions"))
    classes = t.classes()
    rows = [["class", "before", "after", "change", "added", "removed"]]
    for c in classes[:CLASS_LINES]:
        delta = t.after[c] - t.before[c]
        fg = "green" if delta > 0 else ("red" if delta < 0 else None)
        rows.append(
            [
                _cls(c),
                f"{t.before[c]:,}",
                f"{t.after[c]:,}",
                _c(signed(delta), fg, color),
                f"{t.added[c]:,}",
                f"{t.removed[c]:,}",
            ]
        )
    for line in _align(rows, right=[1, 2, 3, 4, 5]):
        click.echo("    " + line)
    if len(classes) > CLASS_LINES:
        click.echo("    " + more(len(classes) - CLASS_LINES, "classes"))
    if ld.splits:
        click.echo("  per split:")
        srows = []
        for s, st in sorted(
            ld.splits.items(), key=lambda kv: -(kv[1].relabeled + sum(kv[1].added.values()))
        )[:SPLIT_LINES]:
            bits = [_cls(s)]
            bits.append(f"{st.relabeled:,} relabelled" if ld.keyed else "")
            bits.append(f"+{sum(st.added.values()):,} -{sum(st.removed.values()):,}")
            bits.append(f"{sum(st.before.values()):,} -> {sum(st.after.values()):,}")
            srows.append(bits)
        for line in _align(srows, right=[1, 2, 3]):
            click.echo("    " + line)
    if ld.resplit:
        click.echo(f"  {ld.resplit:,} {ld.items} moved between splits")
    if ld.examples:
        click.echo("  examples:")
        for ex in ld.examples:
            if "from_path" in ex:
                click.echo(f"    {ex['from_path']} -> {ex['to_path']}")
            else:
                k = f"{ld.key} " if ld.key else ""
                click.echo(f"    {k}{_val(ex['key'])}: {_val(ex['from'])} -> {_val(ex['to'])}")


def print_diff(d: Any, labels_only: bool) -> None:
    color = _use_color()
    if d.files.empty:
        click.echo("no changes")
        return
    if not labels_only:
        _print_files(d.files, color)
        for t in d.tables:
            _print_table(t, color)
    if labels_only and not d.labels:
        click.echo("no label changes")
    for ld in d.labels:
        _print_labels(ld, color)


# ---------------------------------------------------------------------- dsv changelog


def changelog_markdown(
    range_: str | None, commits: list[tuple[bytes, Any]], totals: dict[str, Any]
) -> list[str]:
    """Release notes in Markdown: a summary of the range, then one section per commit."""
    title = f"Dataset changelog: {range_}" if range_ else "Dataset changelog"
    out = [f"# {title}", ""]
    if not commits:
        out.append("No commits in this range.")
        return out
    f = totals.get("files", {})
    b = totals.get("bytes", {})
    line = (
        f"{n_of(totals.get('commits', 0), 'commit')}: files +{f.get('added', 0):,}"
        f" -{f.get('removed', 0):,} ~{f.get('modified', 0):,}"
    )
    if totals.get("moved"):
        line += f" ({totals['moved']:,} moved)"
    line += f", +{_human(b.get('added', 0))} -{_human(b.get('removed', 0))}"
    out.append(line + ".")
    for path, t in (totals.get("tables") or {}).items():
        mod = f" ~{t['modified']:,}" if t.get("modified") else ""
        out.append(f"- `{path}`: rows +{t.get('added', 0):,} -{t.get('removed', 0):,}{mod}")
    for ld in totals.get("labels") or []:
        out.append(f"- {summary_labels(ld)}")
    for oid, c in commits:
        first = c.message.splitlines()[0] if c.message else "(no message)"
        out += ["", f"## {first}", ""]
        day = _fmt_time(c.time, c.tz)[:10]
        out.append(f"`{oid.hex()[:10]}` · {day} · {c.author}")
        rest = c.message.splitlines()[1:]
        body = "\n".join(rest).strip()
        if body:
            out += ["", body]
        out.append("")
        s = c.summary if isinstance(c.summary, dict) else {}
        if s:
            out.append(f"- {summary_line(s)}")
        for extra in changelog_lines(s):
            out.append(f"  - {extra.strip()}" if extra.startswith("  ") else f"- {extra}")
    return out


# ---------------------------------------------------------------------- dsv label


def setting_text(st: Any) -> str:
    bits = []
    if st.label == "folders":
        bits.append("class folders")
    elif st.label == "none":
        bits.append("no labels")
    elif st.label:
        bits.append(f"label column {st.label}")
    if st.split:
        bits.append(f"split column {st.split}")
    if st.key:
        bits.append(f"key {st.key}")
    return f"{st.path or '.'}: " + (", ".join(bits) if bits else "nothing set")


def label_report(r: Any, as_json: bool) -> None:
    for w in r.warnings:
        click.echo(f"dsv: warning: {w}", err=True)
    if as_json:
        _emit_json(
            {
                "rev": r.rev,
                "configured": [s.as_dict() for s in r.settings],
                "folders": r.folders,
                "tables": r.tables,
                "warnings": r.warnings,
            }
        )
        return
    if r.settings:
        click.echo("configured:")
        for s in r.settings:
            click.echo(f"  {setting_text(s)}")
    if r.folders:
        click.echo("class folders:")
        for f in r.folders:
            where = f"{f['root'] or '.'}/"
            splits = f" splits {', '.join(f['splits'])};" if f["splits"] else ""
            how = "configured" if f["configured"] else "detected"
            click.echo(f"  {where}:{splits} {len(f['classes']):,} classes ({how})")
    if r.tables:
        click.echo("tables:")
        rows = []
        for t in r.tables:
            key = f"key {t['key']} ({t['key_source']})" if t["key"] else "no key"
            lab = f"label {t['label']} ({t['label_source']})" if t["label"] else "no label"
            split = f"split {t['split']}" if t["split"] else ""
            rows.append([t["path"], t["format"], f"{t['rows']:,} rows", key, lab, split])
            if t.get("problem"):
                click.echo(f"dsv: warning: {t['path']}: {t['problem']}", err=True)
        for line in _align(rows, right=[2]):
            click.echo("  " + line)
    if not (r.settings or r.folders or r.tables):
        click.echo(
            "no label sources found (configure one with 'dsv label PATH --column COL' or '--folders')"
        )
