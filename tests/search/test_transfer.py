"""search.transfer: candidates from records (the bounded design, the factorial one, what it costs), the rank
statistics' guards, the CLI's bad input, and one tiny transfer run through Ray on CPU (slow)."""

from __future__ import annotations

import json
import math
import shlex
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from scipy import stats

from search.transfer import _parser, _resume_command
from search.transfer import main as transfer_main
from search.transfer_analysis import analyse, bootstrap_ci, kendall, knob_effects, regret, spearman
from search.transfer_design import (
    build_candidates,
    describe_estimate,
    estimate,
    load_records,
    set_short_values,
    winning_records,
)
from trainer.config import make_config

ROOT = Path(__file__).resolve().parents[2]
SHORT, LONG = "tiny-speedrun", "tiny-marathon"


def write_record(root: Path, ident: str, changes: dict[str, Any], *, status: str = "candidate",
                 track: str = SHORT, time_s: float | None = 10.0, relative: float | None = None,
                 control: str | None = None, verdict: str | None = "beats_record",
                 tokens_per_s: list[float] | None = None) -> Path:
    config = make_config(track)
    config = replace(config, hp=replace(config.hp, **changes))
    path = root / track / f"{ident}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"id": ident, "kind": "record", "status": status, "track": track,
                                "verdict": verdict if status == "candidate" else None, "gpu": "GPU-X",
                                "results": [{"seed": i, "tokens_per_s": v} for i, v in enumerate(tokens_per_s or [])],
                                "mean_time_s": time_s, "config": config.to_dict(),
                                **({"relative_to_control": relative, "control": {"record": control}}
                                   if relative is not None else {})}))
    return path


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "search.transfer", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)


# ----------------------------------------------------------------------------------------------------------
# Candidates


def test_candidates_singles_combinations_conflict_and_dedup(tmp_path):
    write_record(tmp_path, "base", {}, status="baseline", time_s=20.0)
    write_record(tmp_path, "a", {"muon_lr": 0.03}, time_s=12.0)
    write_record(tmp_path, "a2", {"muon_lr": 0.03}, time_s=14.0)  # same changes as a: one group
    write_record(tmp_path, "b", {"muon_lr": 0.04, "weight_decay": 0.1}, time_s=11.0)  # conflicts with a
    write_record(tmp_path, "c", {"weight_decay": 0.1}, time_s=15.0)  # b's weight_decay alone
    write_record(tmp_path, "x", {"muon_lr": 0.05}, status="rejected")  # not usable
    write_record(tmp_path, "other", {"muon_lr": 0.05}, track="tiny-marathon")  # another track
    records = load_records(tmp_path, SHORT)
    assert sorted(r["id"] for r in records) == ["a", "a2", "b", "base", "c"]
    cands = build_candidates(records, LONG, factorial=True)
    by_changes = {json.dumps(c.changes, sort_keys=True): c for c in cands}
    assert len(by_changes) == len(cands)  # unique

    base = cands[0]
    assert (base.id, base.kind, base.records, base.changes, base.short_value) == ("baseline", "baseline",
                                                                                 ["base"], {}, 20.0)
    singles = {c.id: c for c in cands if c.kind == "single"}
    assert len(singles) == 3
    a = next(c for c in singles.values() if c.changes == {"muon_lr": 0.03})
    assert a.records == ["a", "a2"] and a.short_value == pytest.approx(13.0)

    combos = [c for c in cands if c.kind == "combination"]
    assert all(math.isnan(c.short_value) for c in combos)
    # a+b conflict on muon_lr: two options, {0.03, wd 0.1} and {0.04, wd 0.1}
    assert {"muon_lr": 0.03, "weight_decay": 0.1} in [c.changes for c in combos]
    # {0.04, wd 0.1} is b itself: deduplicated into b (kept as b, the combination listed under same_as)
    b = next(c for c in singles.values() if c.records == ["b"])
    assert b.changes == {"muon_lr": 0.04, "weight_decay": 0.1} and any("a" in s and "b" in s for s in b.same_as)
    assert [c.changes for c in combos].count({"muon_lr": 0.04, "weight_decay": 0.1}) == 0
    # every candidate's Hyper is distinct
    hps = {json.dumps(replace(replace(make_config(LONG).hp, **c.changes), seed=0).__dict__, sort_keys=True)
           for c in cands}
    assert len(hps) == len(cands)
    # baseline, a, b, c, then combos: a+b -> 1 new (the other is b), a+c -> {0.03, 0.1} (same as a+b's), b+c -> b,
    # a+b+c -> both options already there
    assert len(combos) == 1 and combos[0].records == ["a", "a2", "b"]


def test_candidates_max_combine(tmp_path):
    for i, changes in enumerate(({"muon_lr": 0.03}, {"weight_decay": 0.1}, {"muon_momentum": 0.9})):
        write_record(tmp_path, f"r{i}", changes)
    recs = load_records(tmp_path, SHORT)
    assert len(build_candidates(recs, LONG, max_combine=1)) == 4  # baseline (no records) + 3 singles
    assert len(build_candidates(recs, LONG, max_combine=2)) == 7
    assert len(build_candidates(recs, LONG, factorial=True)) == 8  # + all three
    # the bounded design: baseline, each alone, all three (compatible) together
    bounded = build_candidates(recs, LONG)
    assert [c.kind for c in bounded] == ["baseline", "single", "single", "single", "combination"]
    assert bounded[-1].changes == {"muon_lr": 0.03, "weight_decay": 0.1, "muon_momentum": 0.9}


def test_only_records_that_beat_their_control_are_combined_by_default(tmp_path):
    write_record(tmp_path, "base", {}, status="baseline")
    write_record(tmp_path, "won", {"muon_lr": 0.03})
    write_record(tmp_path, "lost", {"weight_decay": 0.1}, verdict="not_significant")
    write_record(tmp_path, "lost2", {"muon_lr": 0.03}, verdict="not_significant")  # its group has a winner
    records = load_records(tmp_path, SHORT)
    kept, left = winning_records(records)
    assert sorted(r["id"] for r in kept) == ["base", "lost2", "won"] and [r["id"] for r in left] == ["lost"]
    assert [c.changes for c in build_candidates(kept, LONG)] == [{}, {"muon_lr": 0.03}]
    kept, left = winning_records(records, include_not_significant=True)
    assert len(kept) == 4 and left == []
    assert len(build_candidates(kept, LONG)) == 4  # baseline, two groups alone, both together


def test_bounded_design_combines_the_compatible_winners_best_first(tmp_path):
    write_record(tmp_path, "a", {"muon_lr": 0.03}, time_s=12.0)
    write_record(tmp_path, "b", {"muon_lr": 0.04, "weight_decay": 0.1}, time_s=11.0)  # best; conflicts with a
    write_record(tmp_path, "c", {"muon_momentum": 0.9}, time_s=15.0)
    records = load_records(tmp_path, SHORT)
    set_short_values(records)
    cands = build_candidates(records, LONG)
    assert [c.id for c in cands] == ["baseline", "r1", "r2", "r3", "c1"]
    assert cands[-1].changes == {"muon_lr": 0.04, "weight_decay": 0.1, "muon_momentum": 0.9}
    assert cands[-1].records == ["b", "c"]
    assert len(build_candidates(records, LONG, factorial=True)) > len(cands)


def test_estimate_counts_runs_tokens_and_gpu_time_from_measured_speed(tmp_path):
    write_record(tmp_path, "a", {"muon_lr": 0.03}, tokens_per_s=[1000.0, 3000.0])
    write_record(tmp_path, "b", {"weight_decay": 0.1}, tokens_per_s=[2000.0])
    write_record(tmp_path, "c", {"muon_momentum": 0.9})  # no measurement: not in the mean
    records = load_records(tmp_path, SHORT)
    config = replace(make_config(LONG), runtime=replace(make_config(LONG).runtime, max_tokens=10_000))
    cost = estimate([config] * 3, [0, 1], records)
    assert cost["runs"] == 6 and cost["tokens"] == 60_000 and cost["tokens_per_s"] == 2000.0
    assert cost["gpu_s"] == pytest.approx(30.0) and cost["measured_by"] == 2 and cost["gpus"] == ["GPU-X"]
    assert "estimated GPU time" in describe_estimate(cost)
    unknown = estimate([config], [0], [r for r in records if r["id"] == "c"])
    assert unknown["gpu_s"] is None and "GPU time unknown" in describe_estimate(unknown)


def test_dry_run_on_the_repositorys_records_is_affordable_and_the_factorial_is_one_flag_away():
    # four dry runs, side by side: each is a Python start-up that imports the search stack; none writes anything
    dry_run = ["records", "--track", "marathon", "--dry-run"]
    with ThreadPoolExecutor(max_workers=2) as pool:
        bounded, pairs, whole, first_three = pool.map(lambda extra: _cli(*dry_run, *extra), [
            ["--seeds", "2"],
            ["--include-not-significant", "--max-combine", "2"],
            ["--include-not-significant", "--max-combine", "9"],
            ["--include-not-significant", "--max-candidates", "3"],
        ])
    assert bounded.returncode == 0, bounded.stderr
    n = int(bounded.stdout.split(" candidates", 1)[0])
    assert 1 <= n <= 8 and "estimated GPU time" in bounded.stdout and f"{2 * n} runs" in bounded.stdout
    assert "--include-not-significant" in bounded.stdout  # the records left out are named, with the way to add them
    assert pairs.returncode == 0, pairs.stderr
    assert int(pairs.stdout.split(" candidates", 1)[0]) > 8 and "estimated GPU time" in pairs.stdout
    # the whole factorial of records that each have their own rates runs into the hundred thousands: refused
    # in one line, at once, with the ways to narrow it
    assert whole.returncode == 2 and "--max-candidates N" in whole.stderr and "Traceback" not in whole.stderr
    assert first_three.returncode == 0 and first_three.stdout.startswith("3 candidates"), first_three.stderr
    assert "more candidates of the factorial design beyond --max-candidates" in first_three.stdout


def test_load_records_errors(tmp_path):
    from trainer.config import ConfigError

    with pytest.raises(ConfigError, match="no such"):
        load_records(tmp_path / "missing", SHORT)
    (tmp_path / "bad.json").write_text("{nope")
    write_record(tmp_path, "a", {"muon_lr": 0.03}, status="rejected")
    with pytest.raises(ConfigError, match="no usable records"):
        load_records(tmp_path, SHORT)


# ----------------------------------------------------------------------------------------------------------
# Statistics


def test_correlations_undefined():
    assert math.isnan(spearman([1.0, 1.0, 1.0], [1.0, 2.0, 3.0]))
    assert math.isnan(kendall([1.0, 1.0, 1.0], [1.0, 2.0, 3.0]))
    assert bootstrap_ci([1.0, 2.0], [1.0, 2.0], spearman) == (pytest.approx(math.nan, nan_ok=True),) * 2


def test_bootstrap_ci_is_reproducible_and_brackets_the_value():
    rng = np.random.default_rng(1)
    x = rng.normal(size=12)
    y = x + rng.normal(scale=0.8, size=12)
    lo, hi = bootstrap_ci(list(x), list(y), spearman, samples=1000, seed=3)
    assert (lo, hi) == bootstrap_ci(list(x), list(y), spearman, samples=1000, seed=3)  # fixed seed
    assert -1 <= lo <= spearman(list(x), list(y)) <= hi <= 1
    klo, khi = bootstrap_ci(list(x), list(y), kendall, samples=1000, seed=3)
    assert -1 <= klo <= kendall(list(x), list(y)) <= khi <= 1


def _rows():
    return [
        {"id": "baseline", "short": 20.0, "long": 3.30, "changes": {}},
        {"id": "r1", "short": 10.0, "long": 3.25, "changes": {"muon_lr": 0.03}},  # short winner
        {"id": "r2", "short": 15.0, "long": 3.10, "changes": {"weight_decay": 0.1}},
        {"id": "r3", "short": 12.0, "long": math.nan, "changes": {"muon_lr": 0.04}},  # long run failed
        {"id": "c1", "short": math.nan, "long": 3.05, "changes": {"muon_lr": 0.03, "weight_decay": 0.1}},
    ]


def test_regret():
    r = regret(_rows())
    assert r["short_winner"] == "r1" and r["long_winner"] == "c1"
    assert r["regret"] == pytest.approx(3.25 - 3.05)
    assert regret([{"id": "a", "short": math.nan, "long": 1.0, "changes": {}}])["regret"] is None


def test_knob_effects():
    eff = knob_effects(_rows())
    assert eff["muon_lr"]["mean_with"] == pytest.approx((3.25 + 3.05) / 2)
    assert eff["muon_lr"]["mean_without"] == pytest.approx((3.30 + 3.10) / 2)
    assert eff["muon_lr"]["n_with"] == 2 and eff["weight_decay"]["n_with"] == 2
    assert eff["weight_decay"]["difference"] == pytest.approx((3.10 + 3.05) / 2 - (3.30 + 3.25) / 2)


def test_analyse():
    out = analyse(_rows(), samples=200)
    x, y = [20.0, 10.0, 15.0], [3.30, 3.25, 3.10]
    assert out["n_both"] == 3
    assert out["spearman"]["value"] == pytest.approx(stats.spearmanr(x, y).statistic)
    assert out["kendall"]["value"] == pytest.approx(stats.kendalltau(x, y).statistic)
    assert out["regret"] == pytest.approx(0.20)


# ----------------------------------------------------------------------------------------------------------
# CLI


def test_dry_run(tmp_path):
    write_record(tmp_path, "base", {}, status="baseline")
    write_record(tmp_path, "a", {"muon_lr": 0.03})
    write_record(tmp_path, "b", {"weight_decay": 0.1})
    p = _cli(str(tmp_path), "--track", LONG, "--short-track", SHORT, "--dry-run", "--runs-dir", str(tmp_path / "runs"))
    assert p.returncode == 0, p.stderr
    assert "4 candidates" in p.stdout and "muon_lr=0.03, weight_decay=0.1" in p.stdout
    assert "baseline" in p.stdout and not (tmp_path / "runs").exists()


def test_runs_this_machine_cannot_start_are_refused_before_anything_is_written(tmp_path, capsys):
    write_record(tmp_path, "base", {}, status="baseline")
    write_record(tmp_path, "a", {"muon_lr": 0.03})
    code = transfer_main([str(tmp_path), "--track", LONG, "--short-track", SHORT, "--runs-dir", str(tmp_path / "runs"),
                          "--set", "attention=fa4", "--set", "device=cpu"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err[-1].startswith("error: attention=fa4 needs a CUDA GPU (Hopper or Blackwell)"), err
    assert not (tmp_path / "runs").exists()


def test_resume_command_repeats_what_defines_the_candidates():
    args = _parser().parse_args(["recs", "--budget-tokens", "1024", "--max-combine", "1", "--seeds", "2",
                                 "--max-candidates", "5", "--include-not-significant",
                                 "--set", "device=cpu", "--set", "loss_chunk=4096", "--max-runs", "1",
                                 "--gpus-per-trial", "0.5", "--name", "x"])
    cmd = shlex.split(_resume_command(args, Path("runs/x")))
    assert cmd[:4] == ["python", "-m", "search.transfer", "recs"] and "--resume" in cmd
    switches = ("--resume", "--include-not-significant")  # flags without a value
    assert all(s in cmd for s in switches)
    pairs = {cmd[i]: cmd[i + 1] for i in range(len(cmd) - 1) if cmd[i].startswith("--") and cmd[i] not in switches}
    assert pairs == {"--track": "marathon", "--short-track": "speedrun-4.5", "--runs-dir": "runs", "--name": "x",
                     "--seeds": "2", "--budget-tokens": "1024", "--max-combine": "1", "--max-runs": "1",
                     "--max-candidates": "5",
                     "--gpus-per-trial": "0.5", "--set": "loss_chunk=4096"}  # the last --set; both are there:
    assert cmd.count("--set") == 2 and "device=cpu" in cmd
    # defaults stay out
    plain = shlex.split(_resume_command(_parser().parse_args(["recs", "--name", "x"]), Path("runs/x")))
    assert not {"--seeds", "--budget-tokens", "--gpus-per-trial", "--set", "--max-runs", "--max-candidates",
                "--include-not-significant"} & set(plain)


BAD_INPUT = [
    (["{tmp}/missing"], "no such records directory"),
    (["{tmp}/empty"], "no usable records"),
    (["{tmp}/empty", "--track", "nope"], "unknown track"),
    (["{tmp}/empty", "--short-track", "nope"], "unknown track"),
]


@pytest.fixture(scope="module")
def bad_input_runs(tmp_path_factory):
    """The command of every BAD_INPUT case, two at a time: each is a Python start-up that imports the search
    stack and exits, and the cases share nothing (each has its own directory), so they run side by side."""
    dirs = [tmp_path_factory.mktemp("bad-input") for _ in BAD_INPUT]
    for where in dirs:
        (where / "empty").mkdir()
        write_record(where / "empty", "x", {"muon_lr": 0.03}, track="speedrun-3.5")
    with ThreadPoolExecutor(max_workers=2) as pool:
        yield [pool.submit(_cli, *[a.format(tmp=where) for a in args], "--dry-run")
               for where, (args, _) in zip(dirs, BAD_INPUT)]


@pytest.mark.parametrize("args,message", BAD_INPUT)
def test_bad_input(bad_input_runs, args, message):
    p = bad_input_runs[BAD_INPUT.index((args, message))].result()
    assert p.returncode == 2
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and "Traceback" not in p.stderr


# ----------------------------------------------------------------------------------------------------------
# A real transfer run (Ray, CPU)


@pytest.mark.slow
def test_tiny_transfer_run(tmp_path, capsys):
    records = tmp_path / "records"
    write_record(records, "base", {}, status="baseline", time_s=20.0)
    write_record(records, "a", {"muon_lr": 0.03}, time_s=10.0)
    runs = tmp_path / "runs"
    args = [str(records), "--track", LONG, "--short-track", SHORT, "--budget-tokens", "1024", "--seeds", "1",
            "--name", "tr", "--runs-dir", str(runs), "--set", "device=cpu", "--num-cpus", "2"]
    # one run per command, as on a GPU with limited command time: exit 3 and the command that continues
    p = p_first = _cli(*args, "--max-runs", "1")
    assert p.returncode == 3, p.stdout + p.stderr
    assert "1 of 2 runs still to do" in p.stderr and "--resume" in p.stderr
    out = runs / "tr"
    assert json.loads((out / "settings.json").read_text())["kind"] == "transfer"
    t = json.loads((out / "transfer.json").read_text())
    assert t["complete"] is False
    assert [(c["id"], c["pending_seeds"], c["failed_seeds"]) for c in t["candidates"]] == [
        ("baseline", [], []), ("r1", [0], [])]
    assert not (out / "r1" / "seed-0" / "result.json").exists()
    first = (out / "baseline" / "seed-0" / "result.json").stat().st_mtime
    # resuming with other settings would mix two experiments: refused (in this process: it starts no Ray, and
    # the commands before and after this one are the CLI's)
    other = [a if a != "1024" else "2048" for a in args]
    capsys.readouterr()
    code = transfer_main([*other, "--resume"])
    err = capsys.readouterr().err
    assert code == 2 and "candidates differ" in err, err
    # the printed command continues it as it is: the budget, --set and Ray flags come along
    again = shlex.split(p_first.stderr.split("continue with: ", 1)[1].strip())
    assert again[:3] == ["python", "-m", "search.transfer"] and "--budget-tokens" in again and "--set" in again
    p = subprocess.run([sys.executable, *again[1:]], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stdout + p.stderr
    assert (out / "baseline" / "seed-0" / "result.json").stat().st_mtime == first  # not run again
    t = json.loads((out / "transfer.json").read_text())
    assert t["complete"] is True and t["budget_tokens"] == 1024
    assert [c["id"] for c in t["candidates"]] == ["baseline", "r1"]
    for c in t["candidates"]:
        assert math.isfinite(c["long_val_loss"]) and c["failed_seeds"] == []
        assert (out / c["id"] / "seed-0" / "result.json").exists()
    assert t["correlations"]["n"] == 2 and t["short_winner"] == "r1" and t["regret"] >= 0
    assert set(t["knob_effects"]) == {"muon_lr"}
    # resume: everything is there, nothing runs again
    mtime = (out / "r1" / "seed-0" / "result.json").stat().st_mtime
    code = transfer_main([*args, "--resume"])
    assert code == 0, capsys.readouterr().err
    assert (out / "r1" / "seed-0" / "result.json").stat().st_mtime == mtime
    # a fresh run into the same name is refused
    assert transfer_main(args) == 2
    rep = subprocess.run([sys.executable, "-m", "reports", str(out)], cwd=ROOT, capture_output=True, text=True,
                         timeout=120)
    assert rep.returncode == 0, rep.stderr


def test_short_values_are_ratios_to_the_control_when_records_have_them(tmp_path):
    # the baseline's seconds are another GPU's: with ratios present, they rank nothing
    write_record(tmp_path, "base", {}, status="baseline", time_s=182.0)
    write_record(tmp_path, "a", {"muon_lr": 0.03}, time_s=27.0, relative=1.2, control="base")
    write_record(tmp_path, "a2", {"muon_lr": 0.03}, time_s=30.0, relative=1.0, control="base")
    write_record(tmp_path, "b", {"muon_lr": 0.04}, time_s=20.0, relative=0.8, control="base")
    write_record(tmp_path, "old", {"muon_lr": 0.05}, time_s=25.0)  # no ratio: no short value
    records = load_records(tmp_path, SHORT)
    assert set_short_values(records) == "time_relative_to_control"
    cands = {c.id: c for c in build_candidates(records, LONG, max_combine=1)}
    by_changes = {json.dumps(c.changes, sort_keys=True): c.short_value for c in cands.values()}
    assert cands["baseline"].short_value == 1.0
    assert by_changes['{"muon_lr": 0.03}'] == pytest.approx(1.1)
    assert by_changes['{"muon_lr": 0.04}'] == pytest.approx(0.8)
    assert math.isnan(by_changes['{"muon_lr": 0.05}'])


def test_short_values_fall_back_to_seconds_without_ratios(tmp_path):
    write_record(tmp_path, "base", {}, status="baseline", time_s=20.0)
    write_record(tmp_path, "a", {"muon_lr": 0.03}, time_s=12.0)
    records = load_records(tmp_path, SHORT)
    assert set_short_values(records) == "time_to_target_s"
    assert {r["id"]: r["short"] for r in records} == {"base": 20.0, "a": 12.0}


def test_factorial_size_counts_the_product_of_conflicting_values_and_limit_stops_early():
    from search.transfer_design import build_candidates, factorial_size

    def rec(i, **changes):
        return {"id": f"r{i}", "changes": changes, "time_s": 10.0 + i, "short": 1.0}

    records = [rec(0, muon_lr=0.01, adamw_lr=0.002), rec(1, muon_lr=0.02, adamw_lr=0.003), rec(2, seed=5)]
    # baseline + 3 singles + pairs (r0+r1: 2 x 2 rates; r0+r2, r1+r2: 1) + the triple (2 x 2 x 1)
    assert factorial_size(records) == 1 + 3 + (4 + 1 + 1) + 4
    assert factorial_size(records, max_combine=2) == 1 + 3 + 6
    everything = build_candidates(records, "tiny-marathon", factorial=True)
    first = build_candidates(records, "tiny-marathon", factorial=True, limit=5)
    assert len(first) == 5 and [c.changes for c in first] == [c.changes for c in everything[:5]]
