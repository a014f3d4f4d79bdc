"""Open the generated pages in a real headless Chromium and check from the DOM that every plot rendered
with the traces the Python figure holds (each page writes `data-traces` on a plot's div once
Plotly.newPlot resolves, and counts rendered plots on <body>). Screenshots land in the test's tmp dir."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

from reports_fakes import make_fake_records, make_fake_run, make_fake_transfer

import reports

# plot div id -> the figure(s) that page draws, in order
PLOTS = {
    "history.html": [reports.plot_optimization_history],
    "curves.html": [reports.plot_loss_curves],
    "parallel.html": [reports.plot_parallel_coordinate],
    "importance.html": [reports.plot_param_importances],
    "slice.html": [reports.plot_slice],
    "time_to_target.html": [reports.plot_time_to_target],
}


class _Elements(HTMLParser):
    """Attributes of every element with an id, and of <body>; the text of the trials table's first cells."""

    def __init__(self) -> None:
        super().__init__()
        self.by_id: dict[str, dict[str, str | None]] = {}
        self.body: dict[str, str | None] = {}
        self.first_cells: list[str] = []
        self._in_trials = self._in_first_cell = False
        self._cell_index = 0

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        if "id" in attributes:
            self.by_id[attributes["id"] or ""] = attributes
        if tag == "body":
            self.body = attributes
        if tag == "table" and attributes.get("id") == "trials":
            self._in_trials = True
        if self._in_trials and tag == "tr":
            self._cell_index = 0
        if self._in_trials and tag == "td":
            self._in_first_cell = self._cell_index == 0
            self._cell_index += 1

    def handle_endtag(self, tag):
        if tag == "table":
            self._in_trials = False
        if tag == "td":
            self._in_first_cell = False

    def handle_data(self, data):
        if self._in_first_cell and data.strip():
            self.first_cells.append(data.strip())


def _parse(dom: str) -> _Elements:
    parser = _Elements()
    parser.feed(dom)
    return parser


def test_report_pages_render_in_chromium(tmp_path, chromium):
    run_dir = make_fake_run(tmp_path, n_trials=40)
    run = reports.load(run_dir)
    index = reports.make_report(run_dir)
    records = make_fake_records(tmp_path)
    make_fake_transfer(tmp_path)
    leaderboard = reports.make_report(records)
    report = index.parent
    best = run.trials.loc[run.trials["time_to_target_smoothed_s"].idxmin(), "number"]

    urls = [f"file://{report / name}" for name in PLOTS]
    urls += [f"file://{index}", f"file://{report / 'trials.html'}#sort=time_to_target_smoothed_s",
             f"file://{leaderboard}", f"file://{leaderboard.parent / 'transfer.html'}"]
    pages = {page.url: page for page in chromium.open(urls)}

    for name, plots in PLOTS.items():
        page = pages[f"file://{report / name}"]
        dom = _parse(page.dom)
        assert 'class="note error">plotly.min.js did not load' not in page.dom, name
        assert page.ready, f"{name}: the plots did not all render"
        assert dom.body.get("data-plots") == str(len(plots))
        assert dom.body.get("data-plots-rendered") == str(len(plots)), f"{name}: not every plot rendered"
        for i, plot in enumerate(plots):
            div = dom.by_id[f"plot-{Path(name).stem}-{i}"]
            expected = len(plot(run).data)
            assert expected > 0 and div.get("data-traces") == str(expected), (name, div.get("data-traces"), expected)
            assert "js-plotly-plot" in (div.get("class") or "")
        assert 'class="main-svg"' in page.dom
        assert page.screenshot.exists() and page.screenshot.stat().st_size > 20_000, name

    # the curves page drew one line per trial with history (+2 highlighted) as SVG paths
    curves_dom = pages[f"file://{report / 'curves.html'}"].dom
    assert len(re.findall(r'class="trace scatter', curves_dom)) == len(reports.plot_loss_curves(run).data)

    sorted_trials = _parse(pages[f"file://{report / 'trials.html'}#sort=time_to_target_smoothed_s"].dom)
    assert len(sorted_trials.first_cells) == len(run.trials)
    assert sorted_trials.first_cells[0] == str(best), "trials.html#sort=... did not sort by time to target"
    assert sorted_trials.by_id["trials"].get("data-sortable") == "ready"

    board = _parse(pages[f"file://{leaderboard}"].dom)
    assert "track-speedrun-4.5" in board.by_id and "track-marathon" in board.by_id
    transfer = pages[f"file://{leaderboard.parent / 'transfer.html'}"]
    assert _parse(transfer.dom).body.get("data-plots-rendered") == "2"
