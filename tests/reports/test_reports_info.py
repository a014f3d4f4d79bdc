"""The numbers behind each plot (`_get_<plot>_info`), checked without a browser."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from reports_fakes import DIVERGED, ERRORED, MAX_T, RUNGS, SECONDS_ASHA, TARGET, make_fake_run

import reports
from reports._style import is_log_param, log_ticks, record_trial_number
from reports.loss_curves import METRICS, _get_loss_curves_info
from reports.optimization_history import _get_optimization_history_info
from reports.parallel_coordinate import _get_parallel_coordinate_info
from reports.param_importances import _get_param_importances_info, effect_size, kruskal_wallis
from reports.slice import _get_slice_info
from reports.time_to_target import _get_time_to_target_info
from reports.trials_table import _get_trials_table_info, trials_table_html


@pytest.fixture
def run(fake_run):
    return reports.load(fake_run)


def _reached(run):
    return run.trials[run.trials["reached"]]


# ---------------------------------------------------------------------------------------------------------
# optimisation history


def test_best_so_far_is_the_running_minimum_over_reached_trials(run):
    info = _get_optimization_history_info(run)
    numbers, best = info.best_so_far.number, info.best_so_far.value
    assert numbers == sorted(run.trials["number"].tolist())
    reached = _reached(run)
    for n, value in zip(numbers, best):
        earlier = reached.loc[reached["number"] <= n, "objective"]
        if earlier.empty:
            assert value is None
        else:
            assert value == pytest.approx(earlier.min())
    finite = [v for v in best if v is not None]
    assert all(b <= a for a, b in zip(finite, finite[1:])), "best so far must never increase"
    assert info.best.value == pytest.approx(reached["objective"].min())
    assert info.best.number == int(reached.loc[reached["objective"].idxmin(), "number"])


def test_history_splits_trials_by_what_can_be_plotted(run):
    info = _get_optimization_history_info(run)
    valued = sorted(n for g in info.valued.values() for n in g.number)
    unreached = sorted(n for g in info.unreached.values() for n in g.number)
    no_value = sorted(n for g in info.no_value.values() for n in g.number)
    trials = run.trials
    assert valued == sorted(_reached(run)["number"])
    # censored values (1e6 + loss) never reach the plot: unreached trials are shown by their loss
    assert all(y < 100 for g in info.unreached.values() for y in g.y)
    assert set(info.unreached) >= {"stopped", "running"}
    assert no_value == [ERRORED, DIVERGED]
    assert sorted(valued + unreached + no_value) == sorted(trials["number"])
    assert info.record.number == 0 and info.record.value == pytest.approx(trials.loc[0, "objective"])


def test_history_on_a_budget_track_is_not_censored(tmp_path):
    run_dir = make_fake_run(tmp_path, 12, settings_overrides={"target": None, "objective": "best_val_loss"})
    run = reports.load(run_dir)
    trials = run.trials
    trials["objective"] = trials["best_val_loss"]
    info = _get_optimization_history_info(run)
    assert run.is_budget_track and not info.censored
    valued = sorted(n for g in info.valued.values() for n in g.number)
    expected = trials[np.isfinite(trials["objective"]) & (trials["status"] != "errored")]["number"]
    assert valued == sorted(expected)
    assert info.y_label == "validation loss (nats)"


def test_history_figure_has_one_trace_per_group(run):
    info = _get_optimization_history_info(run)
    fig = reports.plot_optimization_history(run)
    expected = len(info.valued) + 1 + len(info.unreached) + 1 + len(info.no_value)  # + best line + star
    assert len(fig.data) == expected


# ---------------------------------------------------------------------------------------------------------
# loss curves


def test_loss_curves_have_every_trial_with_history_and_the_rungs(run):
    info = _get_loss_curves_info(run)
    assert info.rungs == RUNGS
    assert info.target == TARGET
    assert info.missing_history == [ERRORED]
    assert len(info.curves) == len(run.trials) - 1
    assert info.metrics[0] == "smoothed_loss" and set(info.metrics) == {"smoothed_loss", "train_loss", "val_loss"}
    for curve in info.curves:
        tokens = curve.series["smoothed_loss"].tokens
        assert tokens == sorted(tokens)
        if curve.status == "stopped":
            assert curve.cut and curve.last_tokens in RUNGS  # ASHA stops at a rung
        else:
            assert not curve.cut
        if curve.status == "completed":
            reached = bool(run.trials.loc[run.trials["number"] == curve.number, "reached"].iloc[0])
            assert (curve.end.loss <= TARGET) == reached
            assert reached or curve.last_tokens == MAX_T
    diverged = next(c for c in info.curves if c.status == "diverged")
    assert math.isfinite(diverged.end.loss)  # marked at its last finite loss
    # the per-step blow-up (25 nats) must not squash the axis
    assert info.y_ranges["train_loss"][1] < 20
    low, high = info.y_ranges["smoothed_loss"]
    assert low < TARGET < high


def test_loss_curve_figure_draws_each_trial_once_plus_highlights(run):
    info = _get_loss_curves_info(run)
    fig = reports.plot_loss_curves(run)
    assert len(fig.data) == len(info.curves) + 2  # + record settings and best trial on top
    dashed = [t for t in fig.data if t.line.dash == "dash"]
    assert len(dashed) == int((run.trials["status"] == "stopped").sum())
    assert [s.x0 for s in fig.layout.shapes if s.type == "line" and s.x0 == s.x1] == RUNGS
    assert any(s.y0 == TARGET == s.y1 for s in fig.layout.shapes)
    assert len(fig.layout.updatemenus[0].buttons) == 3


def test_loss_curves_are_drawn_against_clocked_seconds_when_the_rungs_are(tmp_path):
    run = reports.load(make_fake_run(tmp_path, 12, settings_overrides={"asha": SECONDS_ASHA}))
    info = _get_loss_curves_info(run)
    assert run.rung_unit == "seconds" and info.x_axis == "clock_s" and info.rungs == [30, 60, 120]
    by_id = {tid: group for tid, group in run.history.groupby("trial_id")}
    for curve in info.curves:
        clock = by_id[curve.trial_id]["clock_s"].tolist()
        assert curve.series["smoothed_loss"].clock_s == pytest.approx(clock[: len(curve.series["smoothed_loss"].loss)])
        assert curve.end.clock_s == pytest.approx(curve.series["smoothed_loss"].clock_s[-1])
    fig = reports.plot_loss_curves(run, info)
    assert [s.x0 for s in fig.layout.shapes if s.type == "line" and s.x0 == s.x1] == [30, 60, 120]
    drawn = next(c for c in info.curves if c.status == "completed")
    trace = next(t for t in fig.data if list(t.y) == drawn.series["smoothed_loss"].loss)
    assert list(trace.x) == drawn.series["smoothed_loss"].clock_s and "s clocked" in trace.hovertemplate
    assert "clocked seconds" in fig.layout.title.text and "clocked" in fig.layout.xaxis.title.text
    for button in fig.layout.updatemenus[0].buttons:  # the menu keeps the clock axis
        metric = next(m for m, label in METRICS.items() if label == button.label)
        assert button.args[0]["x"][0] == info.curves[0].series[metric].clock_s
    page = reports.make_report(run.path, tmp_path / "out").parent / "curves.html"
    assert "<title>Loss against clocked seconds" in page.read_text()


def test_loss_curves_stay_on_tokens_for_token_rungs_and_without_a_clock(tmp_path):
    run = reports.load(make_fake_run(tmp_path / "t", 8))
    info = _get_loss_curves_info(run)
    assert run.rung_unit == "tokens" and info.x_axis == "tokens" and info.rungs == RUNGS
    assert reports.plot_loss_curves(run, info).layout.title.text == "Loss against tokens"
    # rungs in seconds but no clock in the history: tokens, and no rungs at token positions
    run_dir = make_fake_run(tmp_path / "s", 8, settings_overrides={"asha": SECONDS_ASHA})
    pd.read_parquet(run_dir / "history.parquet").drop(columns=["clock_s"]).to_parquet(run_dir / "history.parquet")
    run = reports.load(run_dir)
    info = _get_loss_curves_info(run)
    assert info.x_axis == "tokens" and info.rungs == []
    curves = (reports.make_report(run_dir, tmp_path / "out").parent / "curves.html").read_text()
    assert "<title>Loss against tokens" in curves and "the rungs are not drawn" in curves


def test_rungs_come_from_the_asha_settings_when_not_listed(tmp_path):
    asha = {"grace_period": 1_000_000, "reduction_factor": 2, "max_t": 8_000_000}
    run = reports.load(make_fake_run(tmp_path, 8, settings_overrides={"asha": asha}))
    assert run.rungs == [1e6, 2e6, 4e6]


def test_missing_history_gives_no_curves(tmp_path):
    run = reports.load(make_fake_run(tmp_path, 8, history=False))
    info = _get_loss_curves_info(run)
    assert info.curves == [] and len(info.missing_history) == 8
    assert any("history" in n for n in run.notes)


# ---------------------------------------------------------------------------------------------------------
# parallel coordinates


def test_parallel_coordinates_encode_logs_and_categories(run):
    info = _get_parallel_coordinate_info(run)
    reached = _reached(run)
    dims = {d.param: d for d in info.dimensions}
    assert set(dims) == {"muon_lr", "adamw_lr", "warmup_ratio", "schedule", "weight_decay"}
    assert dims["muon_lr"].kind == "log" and "log10" in dims["muon_lr"].label
    np.testing.assert_allclose(dims["muon_lr"].values, np.log10(reached["param_muon_lr"]))
    ticks = [10 ** t for t in dims["muon_lr"].tickvals]
    assert all(reached["param_muon_lr"].min() - 1e-12 <= t <= reached["param_muon_lr"].max() + 1e-12 for t in ticks)
    assert dims["muon_lr"].ticktext == [f"{t:.3g}" for t in ticks]
    schedule = dims["schedule"]
    assert schedule.kind == "categorical" and schedule.ticktext == sorted(schedule.ticktext)
    decoded = [schedule.ticktext[int(code)] for code in schedule.values]
    assert decoded == reached["param_schedule"].tolist()
    assert dims["warmup_ratio"].kind == "linear"
    assert info.objective.values == pytest.approx(reached["objective"].tolist())
    assert info.numbers == reached["number"].tolist()
    assert str(len(run.trials) - len(reached)) in info.note


def test_parallel_coordinates_fall_back_to_loss_when_nothing_reached(tmp_path):
    run = reports.load(make_fake_run(tmp_path, 10))
    run.trials["reached"] = False
    info = _get_parallel_coordinate_info(run)
    assert "loss" in info.objective.label
    assert len(info.numbers) == int(run.trials["final_smoothed_loss"].notna().sum())


# ---------------------------------------------------------------------------------------------------------
# importance and slices


def test_importance_ranks_the_driving_param_above_noise(run):
    info = _get_param_importances_info(run)
    order = [p.param for p in info.params]
    by_name = {p.param: p for p in info.params}
    assert order[0] == "muon_lr"
    assert by_name["muon_lr"].importance > 0.5 and by_name["muon_lr"].p_value < 1e-3
    assert by_name["muon_lr"].importance > by_name["weight_decay"].importance + 0.4
    assert by_name["schedule"].groups == 4 and by_name["schedule"].spearman is None
    # running and errored trials carry no result
    assert info.n_trials == int(run.trials["status"].isin(["completed", "stopped", "diverged"]).sum())
    assert "Kruskal" in info.method


def test_effect_size_edges():
    objective = pd.Series(np.arange(12, dtype=float))
    separated = effect_size(pd.Series(["a"] * 6 + ["b"] * 6), objective)
    # perfectly separated halves: the most two groups can explain of 12 ranks (~0.73)
    assert separated["importance"] > 0.7 and separated["groups"] == 2 and separated["p_value"] < 0.01
    assert effect_size(pd.Series([1.0] * 12), objective)["reason"] == "constant"
    assert math.isnan(effect_size(pd.Series([1.0, 2.0, 3.0]), objective[:3])["importance"])
    # a U shape: invisible to a rank correlation, caught by the grouping
    x = pd.Series(np.linspace(-1, 1, 30))
    u = effect_size(x, x ** 2)
    assert u["importance"] > 0.6


def test_kruskal_wallis_matches_scipy():
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(1)
    objective = pd.Series(np.round(rng.normal(size=60), 1))  # rounded: ties
    groups = pd.Series(rng.integers(0, 4, size=60).astype(str))
    h, p = kruskal_wallis(objective.rank(), groups)
    expected = stats.kruskal(*[objective[groups == g] for g in sorted(groups.unique())])
    assert h == pytest.approx(expected.statistic) and p == pytest.approx(expected.pvalue)


def test_slice_info(run):
    info = _get_slice_info(run)
    panels = {p.param: p for p in info.panels}
    assert panels["muon_lr"].log and panels["adamw_lr"].log and not panels["warmup_ratio"].log
    assert panels["schedule"].categorical
    reached = _reached(run)
    assert len(panels["muon_lr"].valued.x) == len(reached)
    assert panels["muon_lr"].valued.y == pytest.approx(reached["objective"].tolist())
    loss = run.trials.loc[~run.trials["reached"], "final_smoothed_loss"].dropna()
    assert sorted(panels["muon_lr"].unreached.y) == pytest.approx(sorted(loss))
    assert info.two_rows
    fig = reports.plot_slice(run)
    assert len(fig.data) == 2 * len(panels) + len(info.statuses)


# ---------------------------------------------------------------------------------------------------------
# time to target, table


def test_time_to_target_info(run):
    info = _get_time_to_target_info(run)
    trials = run.trials
    column = trials["time_to_target_smoothed_s"]
    assert info.rule == "smoothed" and info.column == "time_to_target_smoothed_s"
    assert sorted(info.times) == pytest.approx(sorted(column.dropna()))
    assert info.n_reached == int(column.notna().sum())
    assert info.record.number == 0
    assert info.record.time_s == pytest.approx(column[0])
    assert info.best.time_s == pytest.approx(column.min())
    assert info.speedup_vs_record == pytest.approx(column[0] / column.min())
    histogram = info.histogram
    assert sum(histogram.counts) == info.n_reached and len(histogram.edges) == len(histogram.counts) + 1
    assert histogram.edges[0] == pytest.approx(column.min()) and histogram.edges[-1] == pytest.approx(column.max())
    rules = {r.rule: r for r in info.by_rule}
    assert rules["first_step"].reached == int(trials["time_to_target_first_step_s"].notna().sum())


def test_record_trial_is_found_by_its_params(run):
    assert record_trial_number(run) == 0
    run.settings["record_params"] = {k.removeprefix("param_"): run.trials.loc[7, k] for k in run.param_columns}
    assert record_trial_number(run) == 7
    run.settings["record_params"] = {"muon_lr": 123.0}
    assert record_trial_number(run) == 0  # no match: the first trial, which the spaces enqueue as the record


def test_trials_table(run):
    table = _get_trials_table_info(run).table
    assert len(table) == len(run.trials)
    assert {"status", "error", "param_muon_lr", "time_to_target_smoothed_s"} <= set(table.columns)
    html = trials_table_html(run)
    assert html.count("<tr>") == len(run.trials) + 1
    assert "CUDA out of memory" in html
    assert 'data-key="time_to_target_smoothed_s"' in html


def test_small_helpers():
    assert is_log_param("param_muon_lr", [0.01, 0.02]) and is_log_param("adamw_lr")
    assert not is_log_param("param_min_lr_ratio") and not is_log_param("param_warmup_ratio")
    assert not is_log_param("param_muon_lr", [0.0, 0.01])
    values, labels = log_ticks(0.003, 0.06)
    assert values == pytest.approx([0.005, 0.01, 0.02, 0.05]) and labels == ["0.005", "0.01", "0.02", "0.05"]


@pytest.mark.parametrize(("objective", "rule"), [("time_to_target_smoothed_s", "smoothed"), ("first_step", "first_step"),
                                                 ("time_to_target_val_s", "val"), ("something", "smoothed")])
def test_search_rule_from_settings(tmp_path, objective, rule):
    run_dir = make_fake_run(tmp_path, 4, settings_overrides={"objective": objective})
    assert reports.load(run_dir).search_rule == rule
    json.loads((run_dir / "settings.json").read_text())
