"""Self-contained offline HTML: pages that load plotly.js from a file beside them, sortable tables,
and atomic writes so a browser (or a second report) never sees half a page."""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import plotly.graph_objects as go
import plotly.io as pio

from chores.files import atomic_write_bytes

PLOTLY_JS = "plotly.min.js"

CSS = """
:root { --ink: #1d2430; --muted: #5f6b7a; --line: #e3e7ed; --accent: #2b5d9b; }
* { box-sizing: border-box; }
body { font-family: Inter, "Segoe UI", Helvetica, Arial, sans-serif; color: var(--ink); margin: 0;
       background: #fafbfc; line-height: 1.45; }
nav { background: #1d2430; padding: 10px 24px; display: flex; flex-wrap: wrap; gap: 6px 18px; }
nav a { color: #dbe4f0; text-decoration: none; font-size: 14px; }
nav a.here { color: #fff; font-weight: 600; border-bottom: 2px solid #7fb0ff; }
main { max-width: 1400px; margin: 0 auto; padding: 18px 24px 48px; }
h1 { font-size: 24px; margin: 8px 0 4px; } h2 { font-size: 19px; margin: 28px 0 8px; }
p.lead, .muted { color: var(--muted); } .muted { font-size: 13px; }
.plot { background: #fff; border: 1px solid var(--line); border-radius: 6px; margin: 14px 0; padding: 4px; }
.note { background: #fff8e1; border: 1px solid #f0d98a; border-radius: 6px; padding: 8px 12px; margin: 10px 0; }
.error { background: #fdecea; border-color: #f3b4ae; }
table { border-collapse: collapse; background: #fff; font-size: 13px; margin: 8px 0 16px; }
th, td { border: 1px solid var(--line); padding: 4px 8px; text-align: left; vertical-align: top; }
th { background: #f1f4f8; position: sticky; top: 0; }
table.sortable th { cursor: pointer; user-select: none; white-space: nowrap; }
table.sortable th[data-sort=asc]::after { content: " ▲"; } table.sortable th[data-sort=desc]::after { content: " ▼"; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.err { min-width: 260px; max-width: 520px; font-family: ui-monospace, Menlo, monospace; font-size: 12px; color: #8a1c1c;
         white-space: pre-wrap; word-break: break-word; }
.wide { overflow-x: auto; max-height: 80vh; }
.status { display: inline-block; padding: 0 7px; border-radius: 9px; color: #fff; font-size: 12px; }
pre { background: #f1f4f8; padding: 8px 12px; border-radius: 6px; overflow-x: auto; font-size: 12.5px; }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: 3px 16px; font-size: 14px; }
dl.facts dt { color: var(--muted); } dl.facts dd { margin: 0; }
ul.pages li { margin: 4px 0; }
tr.candidate td { background: #fbfcff; font-style: italic; }
.verdict { padding: 0 6px; border-radius: 4px; font-size: 12px; font-style: normal; }
.verdict.good { background: #dff3e4; color: #17642f; } .verdict.meh { background: #eceff3; color: #4a5563; }
.verdict.other { background: #fff3d6; color: #7a5400; }
"""

# Sort a table on a header click; numbers sort as numbers (cells carry data-v), blanks sort last.
# `page.html#sort=<column key>` (or `#sort=-<key>` for descending) opens the page sorted.
SORT_JS = """
(function () {
  function key(cell) { var v = cell.getAttribute('data-v'); return v === null ? cell.textContent.trim() : v; }
  function cmp(a, b, asc) {
    if (a === '' && b === '') return 0; if (a === '') return 1; if (b === '') return -1;
    var x = parseFloat(a), y = parseFloat(b);
    var r = (isFinite(x) && isFinite(y) && String(x) !== 'NaN') ? x - y : String(a).localeCompare(String(b));
    return asc ? r : -r;
  }
  function sortBy(table, th, asc) {
    var col = Array.prototype.indexOf.call(th.parentNode.children, th), body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (r, s) { return cmp(key(r.cells[col]), key(s.cells[col]), asc); });
    rows.forEach(function (r) { body.appendChild(r); });
    table.querySelectorAll('th').forEach(function (h) { h.removeAttribute('data-sort'); });
    th.setAttribute('data-sort', asc ? 'asc' : 'desc');
  }
  document.querySelectorAll('table.sortable').forEach(function (table) {
    table.querySelectorAll('th').forEach(function (th) {
      th.title = 'click to sort';
      th.addEventListener('click', function () { sortBy(table, th, th.getAttribute('data-sort') !== 'asc'); });
    });
    table.setAttribute('data-sortable', 'ready');
  });
  var m = /sort=(-?)([\\w.-]+)/.exec(window.location.hash);
  if (m) {
    var th = document.querySelector('table.sortable th[data-key="' + m[2] + '"]');
    if (th) sortBy(th.closest('table'), th, m[1] !== '-');
  }
})();
"""

# Written before any plot: says so on the page if plotly.min.js is not beside it.
PLOTLY_CHECK_JS = """
if (typeof Plotly === 'undefined') {
  document.addEventListener('DOMContentLoaded', function () {
    var d = document.createElement('div'); d.className = 'note error';
    d.textContent = 'plotly.min.js did not load: keep it in the same folder as this page (rerun python -m reports).';
    document.querySelector('main').prepend(d);
  });
}
"""

# Runs once Plotly.newPlot has resolved: records the drawn trace count on the plot's div and counts
# rendered plots on <body> (tests read these from the DOM).
_AFTER_PLOT_JS = """
var gd = document.getElementById('{plot_id}');
gd.setAttribute('data-traces', String(gd.data.length));
var n = parseInt(document.body.getAttribute('data-plots-rendered') || '0', 10) + 1;
document.body.setAttribute('data-plots-rendered', String(n));
"""

PLOT_CONFIG = {"displaylogo": False, "responsive": True, "scrollZoom": False,
               "toImageButtonOptions": {"format": "png", "scale": 2}}


def esc(value: Any) -> str:
    return html.escape("" if value is None else str(value))


_MD_LINK = re.compile(r"\[([^\]]+)\]\((https?://[^)\s]+)\)")


def markdown_links(text: Any) -> str:
    """Escape text but keep Markdown links `[name](https://...)` as links (the leaderboard's users)."""
    out, last = [], 0
    raw = "" if text is None else str(text)
    for match in _MD_LINK.finditer(raw):
        out.append(esc(raw[last:match.start()]))
        out.append(f'<a href="{esc(match.group(2))}">{esc(match.group(1))}</a>')
        last = match.end()
    out.append(esc(raw[last:]))
    return "".join(out).replace("**", "")


def figure_div(fig: go.Figure, div_id: str) -> str:
    body = pio.to_html(fig, include_plotlyjs=False, full_html=False, div_id=div_id, config=PLOT_CONFIG,
                       post_script=_AFTER_PLOT_JS, validate=False)
    return f'<div class="plot" data-expected-traces="{len(fig.data)}">{body}</div>'


def note(text: str, *, error: bool = False) -> str:
    return f'<div class="note{" error" if error else ""}">{esc(text)}</div>'


def table(columns: Sequence[tuple[str, str]], rows: Sequence[Sequence[tuple[str, Any, str]]], *,
          table_id: str = "", sortable: bool = True, row_classes: Sequence[str] = ()) -> str:
    """columns: (key, header); rows: cells of (html, sort value or None, css class)."""
    head = "".join(f'<th data-key="{esc(k)}">{esc(h)}</th>' for k, h in columns)
    body = []
    for i, row in enumerate(rows):
        cells = []
        for content, sort_value, css in row:
            attrs = f' class="{css}"' if css else ""
            if sort_value is not None:
                attrs += f' data-v="{esc(sort_value)}"'
            cells.append(f"<td{attrs}>{content}</td>")
        css_row = f' class="{esc(row_classes[i])}"' if i < len(row_classes) and row_classes[i] else ""
        body.append(f"<tr{css_row}>{''.join(cells)}</tr>")
    ident = f' id="{esc(table_id)}"' if table_id else ""
    css = ' class="sortable"' if sortable else ""
    return f'<div class="wide"><table{ident}{css}><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table></div>'


def page(title: str, body: str, *, nav: Sequence[tuple[str, str]] = (), here: str = "", plots: int = 0,
         subtitle: str = "") -> str:
    links = "".join(f'<a href="{esc(href)}"{" class=here" if href == here else ""}>{esc(label)}</a>'
                    for href, label in nav)
    scripts = f'<script src="{PLOTLY_JS}"></script>\n<script>{PLOTLY_CHECK_JS}</script>' if plots else ""
    lead = f'<p class="lead">{subtitle}</p>' if subtitle else ""
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{esc(title)}</title>
<style>{CSS}</style>
{scripts}
</head>
<body data-plots="{plots}">
{f"<nav>{links}</nav>" if links else ""}
<main>
<h1>{esc(title)}</h1>
{lead}
{body}
</main>
<script>{SORT_JS}</script>
</body>
</html>
"""


def write_atomic(path: Path, content: str | bytes) -> None:
    """Write to a temporary file beside `path`, then os.replace it: readers see the old or the new file."""
    atomic_write_bytes(path, content.encode("utf-8") if isinstance(content, str) else content, mode=0o644)


def write_plotly_js(directory: Path) -> Path:
    """plotly.js, once per report folder (about 4.7 MB), rewritten only when plotly's version changed."""
    from plotly.offline import get_plotlyjs

    path = directory / PLOTLY_JS
    data = get_plotlyjs().encode("utf-8")
    if not path.exists() or path.stat().st_size != len(data) or path.read_bytes() != data:
        write_atomic(path, data)
    return path
