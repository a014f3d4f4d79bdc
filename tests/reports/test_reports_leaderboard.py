"""Leaderboard (seed style) and transfer numbers."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from reports_fakes import make_fake_records

import reports
from reports._style import format_duration, format_tokens
from reports.leaderboard import _get_leaderboard_info
from reports.transfer import _get_transfer_info

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def records(tmp_path):
    return reports.load_records(make_fake_records(tmp_path))


def test_formats_match_the_seed_leaderboard():
    assert format_duration(182) == "3m 2s" and format_duration(547) == "9m 7s"
    assert format_duration(9420) == "2h 37m" and format_duration(45.26) == "45.3s"
    assert format_duration(None) == format_duration(float("nan")) == "–"
    assert format_tokens(6_086_656) == "6,086,656" and format_tokens(18767872.0) == "18,767,872"


def test_leaderboard_of_the_shipped_records_has_the_seed_tables(tmp_path):
    """``python -m reports records/`` is the one way to the leaderboard (``promote --leaderboard`` is gone)."""
    assert reports.make_report(ROOT / "records", tmp_path / "out") is not None
    out = (tmp_path / "out" / "leaderboard.md").read_text(encoding="utf-8")
    assert "## Fastest To 4.5 Train Loss" in out and "**3m 2s** | **6,086,656**" in out
    assert "**9m 7s** | **18,767,872**" in out and "| 3.1940 | 2h 37m |" in out


def test_leaderboard_info_ranks_accepted_entries_only(records):
    tracks = _get_leaderboard_info(records).tracks
    assert [t.track for t in tracks] == ["speedrun-4.5", "speedrun-3.5", "marathon"]
    fast = tracks[0]
    ranks = [(r.id, r.rank) for r in fast.rows]
    # the significant candidate takes first place; the others are listed unranked
    assert ranks == [("cand-fast", 1), ("seed-4.5", 2), ("cand-partial", None), ("cand-close", None)]
    assert fast.title == "Fastest To 4.5 Train Loss" and not fast.budget
    marathon = tracks[2]
    assert marathon.budget and marathon.rows[0].val_loss == pytest.approx(3.194)


def test_leaderboard_markdown_in_the_seed_style(records):
    text = reports.leaderboard_markdown(records)
    assert text.startswith("# Blueberry-Nano Speedrun Leaderboard")
    assert text.index("## Fastest To 4.5 Train Loss") < text.index("## Fastest To 3.5 Train Loss") < text.index(
        "## The Marathon")
    assert "*Goal: Fastest Time to Reach Loss ≤ 4.5*" in text
    assert text.count("| # | Date | Time | Tokens Used | User | Notes |") == 2
    assert "| # | Date | Val Loss | Time | User | Notes |" in text
    lines = text.splitlines()
    first = next(line for line in lines if line.startswith("| **1** | 2025-12-21"))
    assert "**2m 30s ± 1.5s**" in first and "`beats_record`" in first and "p = 0.002" in first
    assert "| 2 | 2025-12-18 | 3m 2s | 6,086,656 | [Vuk Rosić](https://x.com/VukRosic99) |" in text
    close = next(line for line in lines if "cand-close" in line)
    assert close.startswith("| – |") and "`not_significant`" in close and "*candidate*" in close
    assert "| **1** | 2025-12-17 | 3.1940 | 2h 37m |" in text
    assert "| **1** | 2025-12-18 | **9m 7s** | **18,767,872** |" in text


def test_leaderboard_of_nothing():
    assert "No records yet" in reports.leaderboard_markdown(pd.DataFrame(columns=reports.RECORD_COLUMNS))


def test_leaderboard_html_marks_candidates(records):
    html = reports.leaderboard_html(records)
    assert html.count('class="candidate"') == 3
    assert '<a href="https://x.com/VukRosic99">Vuk Rosić</a>' in html
    assert 'class="verdict good">beats_record' in html and 'class="verdict meh">not_significant' in html


ROWS = [{"id": "a", "short_rank": 1, "long_rank": 2, "short_time_s": 150.0, "long_val_loss": 3.3},
        {"id": "b", "short_rank": 2, "long_rank": 1, "short_time_s": 160.0, "long_val_loss": 3.2},
        {"id": "c", "short_rank": 3, "long_rank": 3, "short_time_s": 170.0, "long_val_loss": 3.4}]


@pytest.mark.parametrize("transfer", [
    ROWS,
    {"candidates": ROWS, "correlations": {"spearman": 0.5, "kendall": 0.33}, "regret": 0.1},
    {"results": {r["id"]: {k: v for k, v in r.items() if k != "id"} for r in ROWS}},
    {"short_rank": {"a": 1, "b": 2, "c": 3}, "long_rank": {"a": 2, "b": 1, "c": 3}},
    {"id": ["a", "b", "c"], "short_rank": [1, 2, 3], "long_rank": [2, 1, 3]},
])
def test_transfer_info_reads_every_shape(transfer):
    info = _get_transfer_info(transfer)
    assert [(r.id, r.short_rank, r.long_rank) for r in info.rows] == [("a", 1, 2), ("b", 2, 1), ("c", 3, 3)]
    assert info.computed["spearman"] == pytest.approx(0.5)
    assert info.computed["kendall"] == pytest.approx(1 / 3)
    if isinstance(transfer, dict) and "correlations" in transfer:
        assert info.statistics == {"spearman": 0.5, "kendall": 0.33, "regret": 0.1}
    fig = reports.plot_rank_change(transfer)
    assert len(fig.data) == 3


def test_transfer_ranks_from_values_and_junk():
    info = _get_transfer_info([{"name": "x", "short_time_s": 3.0, "long_val_loss": 1.0},
                               {"name": "y", "short_time_s": 1.0, "long_val_loss": 2.0}])
    assert [(r.id, r.short_rank, r.long_rank) for r in info.rows] == [("x", 2, 1), ("y", 1, 2)]
    assert info.uses_values and info.short_label == "short_time_s"
    for junk in (None, "text", 3, {"nothing": "here"}, []):
        assert _get_transfer_info(junk).rows == []


def test_correlation_by_length_rows_and_plot():
    def t(rho, tokens=None, **kw):
        return {"short_track": "s", "track": "m", "correlations": {"spearman": rho, "kendall": rho / 2, "n": 4},
                "intervals": {"spearman": {"low": rho - 0.5, "high": 1.0}}, "budget_tokens": tokens, **kw}

    items = [("c", t(0.9, 30e6), None), ("a", t(0.1), 1e6), ("none", t(0.5), None), ("junk", "x", 5),
             ("b", {**t(0.0, 3e6), "correlations": {"spearman": float("nan"), "kendall": 0.2}}, None),
             ("neither", {**t(0.0, 4e6), "correlations": {}}, None)]
    rows = reports.correlation_by_length(items)
    # no budget, or no readable correlation: left out; the rest by budget, the run's own budget when not given
    assert [(r["label"], r["tokens"]) for r in rows] == [("a", 1e6), ("b", 3e6), ("c", 30e6)]
    assert rows[0]["spearman_low"] == pytest.approx(-0.4) and rows[1]["spearman"] is None
    assert rows[0]["kendall_low"] is None
    fig = reports.plot_correlation_by_length(items)
    assert [tr.name for tr in fig.data] == ["spearman", "kendall"]
    sp = fig.data[0]
    assert list(sp.customdata) == [1e6, 30e6]  # b has no Spearman
    assert list(sp.error_y.arrayminus) == pytest.approx([0.5, 0.5]) and list(sp.error_y.array) == pytest.approx([0.9, 0.1])
    assert list(fig.layout.xaxis.ticktext) == ["1M", "3M", "30M"]


def test_knob_effects_biggest_first():
    rows = reports.knob_effects({"knob_effects": {"a": {"difference": 0.01}, "b": {"difference": -0.2},
                                                  "c": "junk", "d": {"difference": None}}})
    assert [r["knob"] for r in rows] == ["b", "a", "d"]
    assert reports.knob_effects([]) == [] and reports.knob_effects({"knob_effects": 3}) == []


def test_a_candidates_other_crossings_are_shown_beside_its_verdict(tmp_path):
    import json

    folder = tmp_path / "records" / "speedrun-4.5"
    folder.mkdir(parents=True)
    by_rule = {"first_step": {"relative_to_control": 0.963, "p_value": 0.358},
               "smoothed": {"relative_to_control": 0.8582, "p_value": 0.000376},
               "val": {"relative_to_control": None, "p_value": None}}  # no crossing: left out
    (folder / "c.json").write_text(json.dumps({
        "id": "c", "status": "candidate", "verdict": "not_significant", "track": "speedrun-4.5", "target": 4.5,
        "rule": "first_step", "date": "2026-11-30", "mean_time_s": 19.3, "p_value": 0.358, "relative_to_control": 0.963,
        "seeds": [0, 1, 2, 3, 4], "by_rule": by_rule}))
    line = next(x for x in reports.leaderboard_markdown(reports.load_records(tmp_path / "records")).splitlines()
                if "not\\_significant" in x or "`not_significant`" in x)
    assert "0.963× control time, other crossings, not ranked: smoothed 0.858× (p = 0.00038))" in line
    assert line.startswith("| – |")  # still unranked: the record rule decides
