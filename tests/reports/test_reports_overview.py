"""The overview page (index.html): what a search or promotion directory holds, in words and tables."""

from __future__ import annotations

import html
import json
import re
from pathlib import Path

import pandas as pd
import pytest
from reports_fakes import (
    MAX_T,
    PROMOTION_LABELS,
    PROMOTION_SEEDS,
    RUNGS,
    SAME_STEP,
    SECONDS_ASHA,
    TOKENS_PER_STEP,
    make_fake_promotion,
    make_fake_run,
)

import reports
from reports.promotion import _get_promotion_info


def overview(run_dir: Path) -> str:
    """The overview's text with the tags taken out (entities kept)."""
    index = reports.make_report(run_dir, run_dir / "report")
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", index.read_text()))


def test_rungs_are_named_in_the_unit_settings_give(tmp_path):
    text = overview(make_fake_run(tmp_path / "s", 8, settings_overrides={"asha": SECONDS_ASHA}))
    assert "ASHA rungs (clocked seconds) 30, 60, 120" in text and "rungs (tokens)" not in text
    # a run from before asha.unit: its rungs are tokens
    text = overview(make_fake_run(tmp_path / "t", 8))
    assert f"ASHA rungs (tokens) {RUNGS[0]:,}" in text
    tokens = {"grace_period": RUNGS[0], "reduction_factor": 2, "max_t": MAX_T, "rungs": RUNGS, "unit": "tokens"}
    assert "ASHA rungs (tokens)" in overview(make_fake_run(tmp_path / "u", 8, settings_overrides={"asha": tokens}))


def _interrupt(run_dir: Path, rerun_as: dict[int, int | None], *, column: bool = True) -> None:
    """Mark trials interrupted, as a search stopped and resumed leaves them (the reruns get new numbers)."""
    trials = pd.read_parquet(run_dir / "trials.parquet")
    for number, rerun in rerun_as.items():
        trials.loc[trials["number"] == number, "status"] = "interrupted"
        if column:
            trials.loc[trials["number"] == number, "rerun_as"] = rerun
    trials.to_parquet(run_dir / "trials.parquet", index=False)
    (run_dir / "trials.csv").unlink()


def test_interrupted_trials_are_counted_apart_from_the_plan(tmp_path):
    # 15 trials for a plan of 12: 4 and 6 were interrupted and rerun as 12 and 13, 14 was cut by the last stop
    run_dir = make_fake_run(tmp_path, 15, running=0, settings_overrides={"num_trials": 12})
    _interrupt(run_dir, {4: 12, 6: 13, 14: None})
    text = overview(run_dir)
    assert "15 of 12" not in text
    assert "12 finished of 12" in text
    assert ("3 interrupted by a stop of the search (trials 4, 6 rerun on --resume as 12, 13; trial 14 not rerun "
            "yet)") in text
    finished = [m for m in re.findall(r"(\d+) (completed|stopped|diverged|errored)", text)]
    assert sum(int(n) for n, _ in finished) == 12
    # written before rerun_as: the numbers alone
    run_dir = make_fake_run(tmp_path / "old", 13, running=0, settings_overrides={"num_trials": 12})
    _interrupt(run_dir, {2: None}, column=False)
    assert "12 finished of 12" in (text := overview(run_dir)) and "1 interrupted by a stop of the search (trial 2)" in text


def test_trial_count_without_interrupted_trials_is_unchanged(tmp_path):
    text = overview(make_fake_run(tmp_path, 10, running=2))
    assert "trials 10 of 10" in text


# ---------------------------------------------------------------------------------------------------------
# promotions


def _row(text: str, first: str) -> str:
    """The text of the table row that starts with `first` (the tags taken out)."""
    match = re.search(rf"<tr><td[^>]*>{re.escape(first)}.*?</tr>", text)
    assert match, first
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", match.group(0))).strip()


def test_a_promotion_gets_a_promotion_overview(tmp_path):
    run_dir = make_fake_promotion(tmp_path)
    page = reports.make_report(run_dir, tmp_path / "out").read_text()
    text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page))
    assert "<title>Promotion report · promote-" in page and "Search report" not in page
    assert "runs 12 of 12" in text and "of ?" not in text and "best.json" not in text
    verdicts = page.split('id="verdicts-first_step"')[1].split("</table>")[0]
    trials = pd.read_parquet(run_dir / "trials.parquet")
    times = trials[trials["run"] == "cand-1"]["time_to_target_first_step_s"]
    control = trials[trials["run"] == "control"]["time_to_target_first_step_s"]
    assert _row(verdicts, "cand-1") == (f"cand-1 20251221-aaaa-1 4 / 4 {times.mean():.4g} ± {times.std():.3g} s "
                                        f"{times.mean() / control.mean():.3f}× 0.012 beats_record faster than the "
                                        "control: one-sided Welch t-test p = 0.012 &lt; 0.05")
    assert _row(verdicts, "control").startswith(f"control seed-4.5 4 / 4 {control.mean():.4g} ± ")
    assert _row(verdicts, "cand-2").startswith("cand-2 20251221-bbbb-1 3 / 4 ") and "– – not_significant" in _row(
        verdicts, "cand-2")
    smoothed = page.split('id="verdicts-smoothed"')[1].split("</table>")[0]
    assert _row(smoothed, "control").startswith("control seed-4.5 2 / 4")
    assert _row(smoothed, "cand-1").endswith("0.980× 0.2 decides nothing")
    assert _row(smoothed, "cand-2") == "cand-2 20251221-bbbb-1 0 / 4 – – – decides nothing"
    assert 'id="verdicts-val"' not in page and "No run reached the target by the val rule." in text
    # the crossing steps: the seeds where every configuration crossed at the same step are marked and said
    crossings = page.split('id="crossings"')[1].split("</table>")[0]
    for seed, step in SAME_STEP.items():
        assert _row(crossings, str(seed)) == " ".join(
            [str(seed), *[f"{step} ({step * TOKENS_PER_STEP:,} tokens)"] * len(PROMOTION_LABELS),
             f"all at step {step}"])
    assert _row(crossings, "3") == f"3 420 ({420 * TOKENS_PER_STEP:,} tokens) 380 ({380 * TOKENS_PER_STEP:,} tokens) –"
    assert ("In 3 of 4 seeds all 3 configurations, the control included, first crossed by the first_step rule at "
            "the same step (seed 0: step 400, seed 1: step 450, seed 2: step 500): the first step under 4.5 is one "
            "easy data window") in text


def test_promotion_info_takes_the_times_from_the_runs_and_the_tests_from_promotion_json(tmp_path):
    run = reports.load(make_fake_promotion(tmp_path))
    info = _get_promotion_info(run)
    assert info.rule == "first_step" and info.alpha == 0.05 and info.n_planned == 12 and info.complete
    assert info.labels == PROMOTION_LABELS and info.seeds == PROMOTION_SEEDS
    summary = json.loads((run.path / "promotion.json").read_text())
    control, cand1, cand2 = info.configs
    assert control.is_control and control.verdict is None and control.by_rule["first_step"].p_value is None
    for rule in ("first_step", "smoothed", "val"):
        expected = summary["control"][rule]
        got = control.by_rule[rule]
        assert got.n_reached == expected["n_reached"] and got.n_seeds == 4
        for key in ("mean_time_s", "std_time_s"):
            assert (got.__dict__[key] is None) == (expected[key] is None)
            assert expected[key] is None or abs(got.__dict__[key] - expected[key]) < 1e-9
    assert cand1.verdict == "beats_record" and cand1.by_rule["smoothed"].p_value == 0.2
    assert cand1.by_rule["val"] == cand1.by_rule["val"].__class__(0, 4, None, None, None, None)
    assert cand2.by_rule["first_step"].n_reached == 3 and cand2.by_rule["first_step"].p_value is None
    assert [row.same_step for row in info.crossings] == [400, 450, 500, None]


def test_a_promotion_without_promotion_json_or_result_files_is_still_reported(tmp_path):
    run_dir = make_fake_promotion(tmp_path, promotion=False)
    (run_dir / "cand-1" / "seed-0" / "result.json").write_text("{ half")
    (run_dir / "cand-2" / "seed-1" / "result.json").unlink()
    run = reports.load(run_dir)
    assert any("cand-1/seed-0" in n for n in run.notes)
    info = _get_promotion_info(run)
    assert info.n_planned == 12 and info.labels == PROMOTION_LABELS  # from settings.json
    assert all(c.verdict is None and c.by_rule["first_step"].p_value is None for c in info.configs)
    assert info.configs[1].by_rule["first_step"].n_reached == 4  # from the runs
    # no result.json: the tokens from the trials table, the step unknown, so the seed is not marked
    assert info.crossings[0].by_label["cand-1"].step is None and info.crossings[0].same_step is None
    assert info.crossings[1].by_label["cand-2"].tokens == SAME_STEP[1] * TOKENS_PER_STEP
    text = overview(run_dir)
    assert "promotion.json is not written yet" in text and "runs 12 of 12" in text
    assert "In 1 of 4 seeds all 3 configurations" in text  # seed 2; seeds 0 and 1 miss a step


def test_a_malformed_or_incomplete_promotion_json_gives_notes_not_tracebacks(tmp_path):
    run_dir = make_fake_promotion(tmp_path)
    (run_dir / "promotion.json").write_text(json.dumps({
        "rule": "first_step", "complete": False, "runs": 12, "missing_runs": ["cand-2-seed3"],
        "control": [1], "candidates": [None, {"label": "cand-1", "by_rule": {"first_step": "x"}, "p_value": "?"}]}))
    text = overview(run_dir)
    assert "The promotion is not complete (1 run missing: cand-2-seed3)" in text
    assert "runs 12 of 12" in text and "Promotion report" in text
    (run_dir / "promotion.json").write_text("[1, 2]")
    text = overview(run_dir)
    assert "promotion.json is not a JSON object" in text and "Promotion report" in text


# ---------------------------------------------------------------------------------------------------------
# GPU time (utilisation.json)


def _session(name: str, per_gpu: dict[str, float] | None, fraction: float = 0.8) -> dict[str, object]:
    entry: dict[str, object] = {"session": name, "started": 1.0e9, "ended": 1.0e9 + 600, "wall_s": 600.0,
                                "clocked_s": 600 * fraction, "fraction": fraction,
                                "fraction_after_first_clock": min(1.0, fraction + 0.1)}
    if per_gpu is not None:
        entry["per_gpu"] = per_gpu
    return entry


def test_gpu_shares_per_session_flag_a_gpu_that_sat_idle(tmp_path):
    run_dir = make_fake_run(tmp_path, 8)
    (run_dir / "utilisation.json").write_text(json.dumps([
        _session("session-1", {"0": 0.9, "1": 0.6283}), _session("session-2", {"0": 0.95, "1": 0.91}, 0.93)]))
    page = reports.make_report(run_dir, tmp_path / "out").read_text()
    table = page.split('id="utilisation"')[1].split("</table>")[0]
    assert _row(table, "1") == "1 session-1 10m 0s 80.0% 90.0% 90.0% 62.8% ⚠"
    assert _row(table, "2") == "2 session-2 10m 0s 93.0% 100.0% 95.0% 91.0%"
    text = html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page)))
    assert "Busy under 85% of the session's wall time: GPU 1 in session 1 (62.8%): this GPU sat idle" in text


def test_gpu_shares_with_all_gpus_busy_say_nothing_alarming(tmp_path):
    run_dir = make_fake_run(tmp_path, 8)
    (run_dir / "utilisation.json").write_text(json.dumps([_session("session-1", {"0": 0.9, "1": 0.88})]))
    page = reports.make_report(run_dir, tmp_path / "out").read_text()
    table = page.split('id="utilisation"')[1].split("</table>")[0]
    assert _row(table, "1").endswith("90.0% 88.0%") and "⚠" not in table and "Busy under" not in page


@pytest.mark.parametrize(("content", "words"), [
    (None, "utilisation.json is not written yet"),
    ("{ half", "utilisation.json could not be read"),
    (json.dumps({"wall_s": 3}), "utilisation.json is not a list of sessions"),
    (json.dumps([7, _session("s", {"0": "lots", "1": 0.5}), _session("t", None)]),
     "utilisation.json: 1 of 3 entries left out (not a JSON object)"),
])
def test_a_missing_or_malformed_utilisation_file_is_a_note(tmp_path, content, words):
    run_dir = make_fake_run(tmp_path, 8)
    if content is not None:
        (run_dir / "utilisation.json").write_text(content)
    text = overview(run_dir)
    assert words in text and "Search report" in text
    if content and content.startswith("[7"):
        assert "utilisation.json: 1 per-GPU share left out (not a number ≥ 0)" in text
        assert "GPU 1 in session 1 (50.0%)" in text and "GPU 1 in session 2 (no clocked trial)" not in text


def test_gpu_shares_after_each_gpus_first_clock_show_beside_the_whole_share(tmp_path):
    run_dir = make_fake_run(tmp_path, 8)
    entry = {**_session("session-1", {"0": 0.7474, "1": 0.6283}),
             "per_gpu_after_first_clock": {"0": 0.856, "1": 0.734}}
    (run_dir / "utilisation.json").write_text(json.dumps([entry]))
    page = reports.make_report(run_dir, tmp_path / "out").read_text()
    table = page.split('id="utilisation"')[1].split("</table>")[0]
    assert _row(table, "1") == ("1 session-1 10m 0s 80.0% 90.0% 74.7% ⚠ (85.6% after its first clock) "
                                "62.8% ⚠ (73.4% after its first clock)")


def test_the_per_seed_comparison_shows_where_promotion_json_has_it(tmp_path):
    run_dir = make_fake_promotion(tmp_path)
    summary = json.loads((run_dir / "promotion.json").read_text())
    summary["candidates"][0]["by_rule"]["first_step"]["paired"] = {"n": 4, "mean_diff_s": -1.0268, "p_value": 0.1486,
                                                                   "same_step": 3, "n_steps": 4}
    (run_dir / "promotion.json").write_text(json.dumps(summary))
    page = reports.make_report(run_dir, tmp_path / "out").read_text()
    verdicts = page.split('id="verdicts-first_step"')[1].split("</table>")[0]
    assert "by seed against the control" in verdicts
    assert "-1.03 s over 4, p 0.149" in _row(verdicts, "cand-1") and " – " in _row(verdicts, "cand-2")
    # without it (promotions before Nov 30) the table keeps its columns
    smoothed = page.split('id="verdicts-smoothed"')[1].split("</table>")[0]
    assert "by seed against the control" not in smoothed


def test_gpu_time_shows_trials_per_hour_and_per_gpu_hour_where_the_file_has_them(tmp_path):
    run_dir = make_fake_run(tmp_path, 8)
    newer = {**_session("session-2", {"0": 0.92, "1": 0.925}, 0.94), "trials": 20, "trials_per_hour": 358.6,
             "gpus": 2, "trials_per_gpu_hour": 179.3}
    (run_dir / "utilisation.json").write_text(json.dumps([_session("session-1", {"0": 0.9, "1": 0.88}), newer]))
    page = reports.make_report(run_dir, tmp_path / "out").read_text()
    table = page.split('id="utilisation"')[1].split("</table>")[0]
    assert "trials / GPU-hour" in table
    assert _row(table, "1") == "1 session-1 10m 0s 80.0% 90.0% 90.0% 88.0% – –"  # an older session: not known
    assert _row(table, "2") == "2 session-2 10m 0s 94.0% 100.0% 92.0% 92.5% 359 179"
