"""Write the HTML reports: a search's pages, a transfer run's page, the records' leaderboard.

Pages are written one by one, each atomically, beside one shared plotly.min.js, so a report can be
regenerated while a search is still running and opened from disk with no network.
"""

from __future__ import annotations

import html
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from . import _html
from ._data import RULES, ReportInputError, RunData, load, load_records
from ._html import esc, figure_div, note, page, write_atomic, write_plotly_js
from ._style import (
    RULE_WORDS,
    STATUS_MEANING,
    final_loss,
    format_duration,
    format_number,
    objective_values,
    ordered_statuses,
    plural,
    status_colour,
)
from .leaderboard import _get_leaderboard_info, _verdict_badge, leaderboard_html, leaderboard_markdown
from .loss_curves import _get_loss_curves_info, clock_axis, plot_loss_curves
from .optimization_history import _get_optimization_history_info, plot_optimization_history
from .parallel_coordinate import _get_parallel_coordinate_info, plot_parallel_coordinate
from .param_importances import METHOD, _get_param_importances_info, plot_param_importances
from .promotion import PromotionInfo, _get_promotion_info
from .slice import _get_slice_info, plot_slice
from .time_to_target import _get_time_to_target_info, plot_time_to_target
from .transfer import (
    _get_transfer_info,
    correlation_by_length,
    interval,
    knob_effects,
    plot_correlation_by_length,
    plot_rank_change,
    plot_transfer_scatter,
)
from .trials_table import _get_trials_table_info, trials_table_html
from .utilisation import _get_utilisation_info

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Page:
    file: str
    label: str
    title: str
    about: str  # how to read it, and the choices made (shown under the title)
    build: Callable[[RunData], tuple[list[go.Figure], list[str], str]]  # figures, notes, extra html
    about_budget: str = ""  # the same for a budget track (no target, nothing censored), where it differs
    title_clocked: str = ""  # title and about when the page is drawn against clocked seconds (rungs in seconds)
    about_clocked: str = ""

    def title_for(self, run: RunData) -> str:
        return self.title_clocked if self.title_clocked and clock_axis(run) else self.title

    def about_for(self, run: RunData) -> str:
        if run.is_budget_track and self.about_budget:
            return self.about_budget
        return self.about_clocked if self.about_clocked and clock_axis(run) else self.about


def _history_page(run: RunData) -> tuple[list[go.Figure], list[str], str]:
    if run.trials.empty:
        return [], ["no trials yet"], ""
    return [plot_optimization_history(run, _get_optimization_history_info(run))], [], ""


def _curves_page(run: RunData) -> tuple[list[go.Figure], list[str], str]:
    info = _get_loss_curves_info(run)
    if not info.curves:
        return [], ["No trial has reported a loss yet (history.parquet is missing or empty)."], ""
    notes = []
    if info.missing_history:
        notes.append(f"{plural(len(info.missing_history), 'trial')} without history (errored before a first report, "
                     f"or not reported yet), not drawn: trials {', '.join(map(str, info.missing_history[:20]))}"
                     + (" …" if len(info.missing_history) > 20 else ""))
    if not run.rungs:
        notes.append("settings.json names no ASHA rungs: none are drawn.")
    elif not info.rungs:
        where = "clocked seconds" if info.x_axis == "clock_s" else "tokens"
        notes.append(f"The ASHA rungs are in {_rung_unit_words(run)}, and the curves are drawn against {where} "
                     + ("(history.parquet has no clock_s)" if run.rung_unit == "seconds" else "")
                     + ": the rungs are not drawn.")
    return [plot_loss_curves(run, info)], notes, ""


def _parallel_page(run: RunData) -> tuple[list[go.Figure], list[str], str]:
    if not run.param_columns:
        return [], ["The trials table has no param_* columns."], ""
    info = _get_parallel_coordinate_info(run)
    if len(info.numbers) < 2:
        return [], ["Fewer than two trials have a result to draw yet."], ""
    return [plot_parallel_coordinate(run, info)], [info.note] if info.note else [], ""


def _importance_page(run: RunData) -> tuple[list[go.Figure], list[str], str]:
    if not run.param_columns:
        return [], ["The trials table has no param_* columns."], ""
    info = _get_param_importances_info(run)
    rows = [[(esc(p.param), p.param, ""),
             (format_number(p.importance, 3), "" if np.isnan(p.importance) else p.importance, "num"),
             (format_number(p.p_value, 2), "" if np.isnan(p.p_value) else p.p_value, "num"),
             (format_number(p.spearman, 3), "" if p.spearman is None else p.spearman, "num"),
             (str(p.groups or ""), p.groups, "num"), (str(p.n), p.n, "num"), (esc(p.reason or ""), "", "")]
            for p in info.params]
    table = _html.table([("param", "parameter"), ("importance", "η²_H"), ("p_value", "p-value (Kruskal–Wallis)"),
                         ("spearman", "Spearman ρ"), ("groups", "groups"), ("n", "trials"), ("reason", "not rated because")],
                        rows, table_id="importance")
    if not any(np.isfinite(p.importance) for p in info.params):
        return [], [f"Not enough finished trials to rate parameters yet ({info.n_trials} with a result)."], table
    return [plot_param_importances(run, info)], [], table


def _slice_page(run: RunData) -> tuple[list[go.Figure], list[str], str]:
    if not run.param_columns:
        return [], ["The trials table has no param_* columns."], ""
    if objective_values(run).isna().all() and final_loss(run.trials)[0].isna().all():
        return [], ["No trial has a result or a loss to plot yet."], ""
    return [plot_slice(run, _get_slice_info(run))], [], ""


def _time_page(run: RunData) -> tuple[list[go.Figure], list[str], str]:
    if run.is_budget_track:
        return [], ["This track has no target (a fixed token budget): there is no time to target."], ""
    info = _get_time_to_target_info(run)
    rows = [[(esc(r.rule), r.rule, ""), (str(r.reached), r.reached, "num"),
             (format_duration(r.best_s), r.best_s or "", "num"),
             (format_duration(r.median_s), r.median_s or "", "num"),
             (format_duration(r.record_s), r.record_s or "", "num")] for r in info.by_rule]
    table = ("<h2>Every crossing rule</h2>"
             + _html.table([("rule", "rule"), ("reached", "trials that reached"), ("best", "best time"),
                            ("median", "median time"), ("record", f"record settings (trial {info.record.number if info.record else '–'})")],
                           rows, table_id="rules"))
    if info.n_reached == 0:
        return [], [f"No trial has reached the target by the {info.rule} rule yet."], table
    return [plot_time_to_target(run, info)], [], table


def _trials_page(run: RunData) -> tuple[list[go.Figure], list[str], str]:
    if run.trials.empty:
        return [], ["no trials yet"], ""
    return [], [], trials_table_html(run, _get_trials_table_info(run))


SEARCH_PAGES = (
    Page("history.html", "History", "Optimisation history",
         "One point per trial, by trial number, in up to three panels. Top: trials that reached the target, by "
         "their time to target, with the best so far as a black step line. The search objective is censored (a "
         "trial that missed the target gets about 1e6 + its loss, only to rank it behind the others), so those "
         "trials are shown in the middle panel by their final smoothed train loss instead (open circles). Bottom: "
         "trials with no number at all (errored, or diverged before a loss) as crosses. Gold star: the record's "
         "settings.", _history_page,
         "One point per trial, by trial number: its objective (a loss: this track has a fixed token budget and "
         "no target, so nothing is censored), with the best so far as a black step line. Trials with no number "
         "(errored, or diverged before a loss) are crosses in the strip below. Gold star: the record's settings."),
    Page("curves.html", "Loss curves", "Loss against tokens",
         "Every trial's loss as it trained, coloured by status; the menu switches between smoothed train loss, "
         "per-step train loss and validation loss. Dotted vertical lines are the ASHA rungs (where ASHA compares "
         "trials); trials it stopped are dashed and end in a cross. The dashed horizontal line is the target. "
         "The best trial and the record's settings are drawn thick on top.", _curves_page,
         title_clocked="Loss against clocked seconds",
         about_clocked="Every trial's loss against its clocked training seconds (this search's ASHA rungs are in "
         "clocked seconds, so curves are compared at equal training time), coloured by status; the menu switches "
         "between smoothed train loss, per-step train loss and validation loss. Dotted vertical lines are the ASHA "
         "rungs (where ASHA compares trials); trials it stopped are dashed and end in a cross. The dashed "
         "horizontal line is the target. The best trial and the record's settings are drawn thick on top."),
    Page("parallel.html", "Parallel coordinates", "Parallel coordinates",
         "One line per trial with a result, through each searched parameter to the objective; drag along an "
         "axis to filter. Categorical parameters are coded with their names as ticks; learning rates are on a "
         "log10 axis labelled with their values.", _parallel_page),
    Page("importance.html", "Importance", "Parameter importance",
         f"Method: {METHOD}. η²_H near 0: the parameter does not change how trials rank; "
         "larger: it explains more of the ranking (with k groups it tops out near 1 − 1/k², 0.96 for 5 bins). Ranks make the censored objective usable as it is and grouping catches U-shaped effects "
         "(an optimal learning rate inside the range), which a correlation misses. Spearman ρ gives the direction "
         "for monotone effects. Small searches give noisy estimates: read the p-values.", _importance_page),
    Page("slice.html", "Slices", "Slice plots",
         "The result of every trial against each parameter. Top rows: time to target of trials that reached it; "
         "bottom rows: final smoothed loss of those that did not. Learning rates are on log axes.", _slice_page,
         "The objective (a loss) of every trial against each parameter. Learning rates are on log axes."),
    Page("time_to_target.html", "Time to target", "Time to target",
         "Time to target by the search's rule for every trial that reached it; the gold line and star are the "
         "record's settings (the search's first trial). Right: tokens against time; a trial below the others "
         "learns more per token, one to the left processes tokens faster.", _time_page),
    Page("trials.html", "Trials", "All trials",
         "Click a header to sort (blank cells last); trials.html#sort=<column> opens the page sorted. The "
         "objective column is the search's censored value: values near 1e6 are trials that did not reach the "
         "target.", _trials_page),
)


def _facts(items: list[tuple[str, Any]]) -> str:
    cells = "".join(f"<dt>{esc(k)}</dt><dd>{v}</dd>" for k, v in items if v not in (None, ""))
    return f'<dl class="facts">{cells}</dl>'


def _status_counts(run: RunData, leave_out: tuple[str, ...] = ()) -> str:
    counts = run.trials.loc[~run.trials["status"].isin(leave_out), "status"].value_counts()
    return " ".join(f'<span class="status" style="background:{status_colour(s)}" title="{esc(STATUS_MEANING.get(s, s))}">'
                    f"{int(counts[s])} {esc(s)}</span>" for s in ordered_statuses(counts.index))


def _numbers(values: Any) -> str:
    return ", ".join(str(int(v)) for v in values)


def _trial_count(run: RunData) -> str:
    """Trials against the plan. Interrupted trials are rerun under new numbers on --resume, so counting them
    with the others overshoots the plan ("66 of 64"): they are counted apart, with the reruns they got."""
    trials, planned = run.trials, esc(run.settings.get("num_trials", "?"))
    interrupted = trials[trials["status"] == "interrupted"]
    if interrupted.empty:
        return f"{len(trials)} of {planned} &nbsp; {_status_counts(run)}"
    finished = int((~trials["status"].isin(["interrupted", "running"])).sum())
    rerun_as = pd.to_numeric(interrupted["rerun_as"], errors="coerce") if "rerun_as" in interrupted else None
    if rerun_as is None:  # written before rerun_as: which reruns belong to them is unknown
        fate = f"{'trial' if len(interrupted) == 1 else 'trials'} {_numbers(interrupted['number'])}"
    else:
        rerun, left = interrupted[rerun_as.notna()], interrupted[rerun_as.isna()]
        parts = []
        if len(rerun):
            parts.append(f"{'trial' if len(rerun) == 1 else 'trials'} {_numbers(rerun['number'])} rerun on --resume "
                         f"as {_numbers(rerun_as[rerun_as.notna()])}")
        if len(left):
            parts.append(f"{'trial' if len(left) == 1 else 'trials'} {_numbers(left['number'])} not rerun yet")
        fate = "; ".join(parts)
    badge = (f'<span class="status" style="background:{status_colour("interrupted")}" '
             f'title="{esc(STATUS_MEANING["interrupted"])}">{len(interrupted)} interrupted</span>')
    return (f"{finished} finished of {planned} &nbsp; {_status_counts(run, ('interrupted',))} &nbsp;·&nbsp; {badge} "
            f"by a stop of the search ({esc(fate)})")


def _best_section(run: RunData) -> str:
    values = objective_values(run)
    if values.isna().all():
        return "<h2>Best trial</h2>" + note("No trial has reached the target yet." if not run.is_budget_track
                                            else "No trial has finished yet.")
    row = run.trials.loc[values.idxmin()]
    params = {c.removeprefix("param_"): row[c] for c in run.param_columns}
    items = [("trial", f"{int(row['number'])} ({esc(row['trial_id'])})"),
             ("objective", esc(format_number(values.min()))),
             ("parameters", esc(", ".join(f"{k}={format_number(v)}" for k, v in params.items())))]
    body = "<h2>Best trial</h2>" + _facts(items)
    best = run.best or {}
    command = best.get("command") if isinstance(best.get("command"), str) else None
    if command:
        body += f"<p>Rerun it:</p><pre>{esc(command)}</pre>"
    elif run.best is None:
        body += '<p class="muted">best.json is not written yet (the search writes it when it ends).</p>'
    return body


def _rung_unit_words(run: RunData) -> str:
    return {"seconds": "clocked seconds"}.get(run.rung_unit, run.rung_unit)


def _nav(pages: list[tuple[str, str]]) -> list[tuple[str, str]]:
    return [("index.html", "Overview"), *pages]


def write_search_report(run: RunData, out_dir: Path) -> Path:
    """Write the search report's pages into `out_dir`; returns the path of index.html."""
    if run.trials.empty:
        reasons = "; ".join(run.notes)
        raise ReportInputError(f"{run.path}: the run has no trials yet" + (f" ({reasons})" if reasons else "")
                               + "; rerun when a trial has reported")
    write_plotly_js(out_dir)
    nav = _nav([(p.file, p.label) for p in SEARCH_PAGES])
    summaries = []
    for spec in SEARCH_PAGES:
        try:
            figures, notes, extra = spec.build(run)
        except Exception as exc:  # one plot must never take the whole report down
            log.exception("page %s failed", spec.file)
            figures, notes, extra = [], [f"This page could not be drawn: {type(exc).__name__}: {exc}"], ""
        body = f"<p class=lead>{esc(spec.about_for(run))}</p>" + "".join(note(n) for n in notes)
        body += "".join(figure_div(fig, f"plot-{spec.file.removesuffix('.html')}-{i}") for i, fig in enumerate(figures))
        body += extra
        write_atomic(out_dir / spec.file, page(f"{spec.title_for(run)} · {run.name}", body, nav=nav, here=spec.file,
                                               plots=len(figures)))
        summaries.append((spec, figures, notes))
    write_atomic(out_dir / "index.html", _search_index(run, summaries, nav))
    return out_dir / "index.html"


def _search_index(run: RunData, summaries: list[tuple[Page, list[go.Figure], list[str]]],
                  nav: list[tuple[str, str]]) -> str:
    if run.kind == "promotion":
        return _promotion_index(run, summaries, nav)
    s, trials = run.settings, run.trials
    running = int((trials["status"] == "running").sum())
    asha_text = ", ".join(f"{k.replace('_', ' ')} {format_number(v)}" for k, v in
                          (s.get("asha") if isinstance(s.get("asha"), dict) else {}).items() if k != "rungs")
    failed = trials["status"].isin(["errored", "diverged"])
    banners = []
    if failed.all():
        banners.append(note(f"All {len(trials)} trials failed ({int((trials['status'] == 'errored').sum())} errored, "
                            f"{int((trials['status'] == 'diverged').sum())} diverged): there is nothing to optimise "
                            "over. The Trials page lists their errors.", error=True))
    if running:
        banners.append(note(f"{plural(running, 'trial')} still running: this report shows what was on disk when it was "
                            "made. Rerun python -m reports to refresh it."))
    banners += [note(n) for n in run.notes]
    target = run.target
    facts = [("kind", esc(run.kind)), ("space", esc(s.get("space"))), ("track", esc(s.get("track"))),
             ("preset", esc(s.get("preset"))), ("objective", esc(s.get("objective"))),
             ("search rule", esc(run.search_rule)), ("target", esc(f"loss ≤ {target:g}") if target is not None else ""),
             ("trials", _trial_count(run)),
             ("sampler", esc(s.get("sampler"))), ("seed", esc(s.get("seed"))),
             ("ASHA", esc(asha_text)), (f"ASHA rungs ({_rung_unit_words(run)})", esc(", ".join(format_number(r) for r in run.rungs))),
             ("created", esc(s.get("created"))), ("command", f"<code>{esc(s.get('command'))}</code>" if s.get("command") else ""),
             ("directory", f"<code>{esc(run.path)}</code>")]
    body = "".join(banners) + _facts(facts) + _utilisation_section(run) + _pages_list(run, summaries)
    body += _best_section(run)
    body += _settings_and_date(s)
    return page(f"Search report · {run.name}", body, nav=nav, here="index.html")


def _percent(share: float | None) -> str:
    return "–" if share is None else f"{100 * share:.1f}%"


def _utilisation_section(run: RunData) -> str:
    info = _get_utilisation_info(run)
    head = "<h2>GPU time</h2>"
    if info.state == "missing":
        return head + ('<p class="muted">utilisation.json is not written yet (the search writes a session\'s '
                       "share of GPU time when the session ends).</p>")
    if info.state == "unreadable":
        return head + note("; ".join(info.problems) or "utilisation.json could not be read: no GPU shares to show.")
    body = head + ("<p class=lead>Per session of the search (--resume adds one): its wall time, the share of it in "
                   "which some trial's clock ran (after the first clock: the first cold start left out), and each "
                   "GPU's own clocked share of the whole wall time (its first start-up included). A GPU under "
                   f"{100 * info.threshold:.0f}% is marked ⚠.</p>")
    body += "".join(note(p) for p in info.problems)
    if not info.sessions:
        return body + note("utilisation.json lists no session.")
    if info.idle or info.absent:
        parts = [f"GPU {gpu} in session {s.number} ({_percent(share)})" for s, gpu, share in info.idle]
        parts += [f"GPU {gpu} in session {s.number} (no clocked trial)" for s, gpu in info.absent]
        body += note(f"Busy under {100 * info.threshold:.0f}% of the session's wall time: {', '.join(parts)}: "
                     + ("this GPU sat idle, or was" if len(parts) == 1 else "these GPUs sat idle, or were")
                     + " starting or compiling trials, for the rest of it.", error=True)
    throughput = any(s.trials_per_hour is not None for s in info.sessions)  # files since Nov 30 (third session)
    rows = []
    for session in info.sessions:
        cells = [(f"{session.number}" + (f' <span class="muted">{esc(session.name)}</span>' if session.name else ""),
                  session.number, "num"),
                 (esc(format_duration(session.wall_s)), "" if session.wall_s is None else session.wall_s, "num"),
                 (_percent(session.fraction), "" if session.fraction is None else session.fraction, "num"),
                 (_percent(session.fraction_after_first_clock),
                  "" if session.fraction_after_first_clock is None else session.fraction_after_first_clock, "num")]
        for gpu in info.gpus:
            share = session.per_gpu.get(gpu)
            text = _percent(share)
            if share is not None and share < info.threshold:
                text = f'<b title="under {100 * info.threshold:.0f}% busy">{text} ⚠</b>'
            if gpu in session.per_gpu_after:
                text += f' <span class="muted">({_percent(session.per_gpu_after[gpu])} after its first clock)</span>'
            cells.append((text, "" if share is None else share, "num"))
        if throughput:
            for value in (session.trials_per_hour, session.trials_per_gpu_hour):
                cells.append(("–" if value is None else f"{value:.0f}", "" if value is None else value, "num"))
        rows.append(cells)
    columns = [("session", "session"), ("wall", "wall time"), ("clocked", "clocked share"),
               ("after_first", "after the first clock"), *((f"gpu-{g}", f"GPU {g}") for g in info.gpus)]
    if throughput:
        columns += [("per_hour", "trials / hour"), ("per_gpu_hour", "trials / GPU-hour")]
    return body + _html.table(columns, rows, table_id="utilisation")


def _pages_list(run: RunData, summaries: list[tuple[Page, list[go.Figure], list[str]]]) -> str:
    links = []
    for spec, figures, notes in summaries:
        extra = f' <span class="muted">— {esc(notes[0])}</span>' if notes and not figures and spec.file != "trials.html" else ""
        links.append(f'<li><a href="{spec.file}">{esc(spec.title_for(run))}</a>{extra}</li>')
    return "<h2>Pages</h2><ul class=pages>" + "".join(links) + "</ul>"


def _settings_and_date(settings: dict[str, Any]) -> str:
    body = ""
    if settings:
        body += ("<details><summary>settings.json</summary><pre>"
                 + esc(json.dumps(settings, indent=2, default=str)) + "</pre></details>")
    return body + f'<p class="muted">Made {datetime.now().strftime("%Y-%m-%d %H:%M:%S")} from the files on disk.</p>'


# ----------------------------------------------------------------------------------------------------------
# Promotions


def _seconds(value: float | None, std: float | None = None) -> str:
    if value is None:
        return "–"
    return f"{format_number(value, 4)}" + (f" ± {format_number(std, 3)}" if std is not None else "") + " s"


def _verdict_table(info: PromotionInfo, rule: str) -> str:
    rows = []
    for config in info.configs:
        r = config.by_rule[rule]
        reached = "–" if r.n_reached is None else f"{r.n_reached} / {'?' if r.n_seeds is None else r.n_seeds}"
        name = esc(config.label) + (f' <span class="muted">{esc(config.record)}</span>' if config.record else "")
        if config.is_control:
            verdict = '<span class="muted">control</span>'
        elif rule == info.rule:
            verdict = _verdict_badge(config.verdict) + (f' <span class="muted">{esc(config.verdict_reason)}</span>'
                                                        if config.verdict_reason else "")
        else:
            verdict = '<span class="muted">decides nothing</span>'
        rows.append([(name, config.label, ""), (reached, "" if r.n_reached is None else r.n_reached, "num"),
                     (esc(_seconds(r.mean_time_s, r.std_time_s)), "" if r.mean_time_s is None else r.mean_time_s, "num"),
                     ("–" if r.relative_to_control is None else f"{r.relative_to_control:.3f}×",
                      "" if r.relative_to_control is None else r.relative_to_control, "num"),
                     ("–" if r.p_value is None else esc(format_number(r.p_value, 3)),
                      "" if r.p_value is None else r.p_value, "num"),
                     (verdict, config.verdict or "", "")])
        if r.paired_n:
            text = f"{r.paired_diff_s:+.2f} s" if r.paired_diff_s is not None else "–"
            text += f" over {r.paired_n}, p {format_number(r.paired_p, 3)}" if r.paired_p is not None else \
                f" over {r.paired_n}"
            rows[-1].insert(5, (esc(text), "" if r.paired_diff_s is None else r.paired_diff_s, "num"))
        elif any(c.by_rule[rule].paired_n for c in info.configs):
            rows[-1].insert(5, ("–", "", "num"))
    columns = [("label", "configuration"), ("reached", "runs reached / seeds"),
               ("time", "time to target (mean ± std)"), ("ratio", "ratio to the control"),
               ("p_value", "p (one-sided Welch)"), ("verdict", "verdict")]
    if any(c.by_rule[rule].paired_n for c in info.configs):  # promotions since Nov 30: seed by seed too
        columns.insert(5, ("paired", "by seed against the control (mean difference, paired p)"))
    return _html.table(columns, rows, table_id=f"verdicts-{rule}")


def _verdict_section(run: RunData, info: PromotionInfo) -> str:
    alpha = "alpha" if info.alpha is None else f"{info.alpha:g}"
    if run.is_budget_track:  # verdicts compare the final val loss: there is no time to target
        rows = [[(esc(c.label), c.label, ""), (esc(format_number(c.val_loss, 4)) or "–", c.val_loss or "", "num"),
                 ("–" if c.by_rule[info.rule].p_value is None else esc(format_number(c.by_rule[info.rule].p_value, 3)),
                  None, "num"),
                 ('<span class="muted">control</span>' if c.is_control else _verdict_badge(c.verdict), None, "")]
                for c in info.configs]
        return ("<h2>Verdicts</h2>" + f"<p class=lead>Mean final validation loss over the seeds; a candidate beats the "
                f"record when a one-sided Welch t-test against the control gives p &lt; {esc(alpha)}.</p>"
                + _html.table([("label", "configuration"), ("val_loss", "val loss"), ("p_value", "p (one-sided Welch)"),
                               ("verdict", "verdict")], rows, table_id="verdicts"))
    body = ("<h2>Verdicts</h2><p class=lead>Time to target by each crossing rule, over the runs that reached it "
            f"(mean ± sample std, in clocked seconds). The verdict rests on the record rule ({esc(info.rule)}) alone: "
            "a candidate beats the record only if all its seeds reached the target and a one-sided Welch t-test of "
            f"its times against the control's gives p &lt; {esc(alpha)}. The other rules are shown beside it.</p>")
    unreached = []
    for rule in sorted(RULES, key=lambda r: r != info.rule):
        if info.configs and all(c.by_rule[rule].n_reached == 0 for c in info.configs):
            unreached.append(rule)
            continue
        title = f"{RULE_WORDS.get(rule, rule)} ({rule}{', the record rule' if rule == info.rule else ''})"
        body += f"<h3>{esc(title)}</h3>" + _verdict_table(info, rule)
    if unreached:
        body += (f"<p class=muted>No run reached the target by the {' or '.join(unreached)} "
                 f"rule{'s' if len(unreached) > 1 else ''}.</p>")
    return body


def _same_step_sentence(info: PromotionInfo) -> str:
    same = info.same_step_seeds
    where = ", ".join(f"seed {row.seed}: step {row.same_step:,.0f}" for row in same)
    head = (f"In {len(same)} of {len(info.crossings)} seeds all {len(info.labels)} configurations, the control "
            f"included, first crossed by the {info.rule} rule at the same step ({where})")
    if info.rule == "first_step":
        target = "the target" if info.target is None else f"{info.target:g}"
        return (f"{head}: the first step under {target} is one easy data window of that seed's data order, so "
                "this rule barely sees the hyperparameters.")
    return f"{head}: at those seeds the rule does not tell the configurations apart."


def _crossing_section(info: PromotionInfo) -> str:
    body = (f"<h2>Crossing step per seed ({esc(info.rule)}, the record rule)</h2><p class=lead>The step (and "
            "tokens) at which each run first crossed the target; – where it did not, or has no result yet. "
            "A seed where every configuration crossed at the same step is marked.</p>")
    if not any(row.by_label for row in info.crossings):
        return body + note(f"No run has crossed by the {info.rule} rule yet.")
    if info.same_step_seeds:
        body += note(_same_step_sentence(info))
    rows = []
    for row in info.crossings:
        cells = [(str(row.seed), row.seed, "num")]
        for label in info.labels:
            crossing = row.by_label.get(label)
            if crossing is None:
                cells.append(("–", "", "num"))
                continue
            tokens = "" if crossing.tokens is None else f"{crossing.tokens:,.0f} tokens"
            text = (f"{crossing.step:,.0f} <span class=muted>({tokens})</span>" if crossing.step is not None
                    else f"? <span class=muted>({tokens})</span>")
            cells.append((text, "" if crossing.step is None else crossing.step, "num"))
        cells.append((f"<b>all at step {row.same_step:,.0f}</b>" if row.same_step is not None else "", None, ""))
        rows.append(cells)
    columns = [("seed", "seed"), *((f"label-{label}", label) for label in info.labels), ("same", "same step")]
    return body + _html.table(columns, rows, table_id="crossings")


def _promotion_index(run: RunData, summaries: list[tuple[Page, list[go.Figure], list[str]]],
                     nav: list[tuple[str, str]]) -> str:
    s, trials = run.settings, run.trials
    info = _get_promotion_info(run)
    banners = []
    running = int((trials["status"] == "running").sum())
    if running:
        banners.append(note(f"{plural(running, 'run')} still running: this report shows what was on disk when it was "
                            "made. Rerun python -m reports to refresh it."))
    if run.promotion is None:
        banners.append(note("promotion.json is not written yet (the promotion writes it when its runs end): no "
                            "verdicts, p-values or ratios yet; the times below are from the runs on disk."))
    elif info.complete is False:
        missing = ", ".join(info.missing_runs[:12]) + (" …" if len(info.missing_runs) > 12 else "")
        banners.append(note(f"The promotion is not complete ({plural(len(info.missing_runs), 'run')} missing"
                            + (f": {missing}" if missing else "") + "): no verdicts or records yet; python -m "
                            "search.promote --resume on this directory runs what is missing."))
    if info.failed_runs:
        banners.append(note(f"Runs that did not finish: {', '.join(info.failed_runs)}.", error=True))
    banners += [note(n) for n in run.notes]
    control = s.get("control") if isinstance(s.get("control"), dict) else {}
    control_text = " ".join(str(x) for x in (control.get("record"), f"({control.get('status')})"
                                              if control.get("status") else None) if x)
    source = s.get("source_run")
    top = f", top {s.get('top')}" if s.get("top") is not None else ""
    extra = s.get("set") if isinstance(s.get("set"), dict) else {}
    target = run.target
    planned = "?" if info.n_planned is None else str(info.n_planned)
    facts = [("kind", esc(run.kind)), ("track", esc(s.get("track"))), ("record rule", esc(info.rule)),
             ("target", esc(f"loss ≤ {target:g}") if target is not None else ""),
             ("runs", f"{len(trials)} of {esc(planned)} &nbsp; {_status_counts(run)}"),
             ("seeds", esc(", ".join(map(str, info.seeds)))),
             ("alpha", esc(format_number(info.alpha)) if info.alpha is not None else ""),
             ("control", esc(control_text)),
             ("candidates from", f"<code>{esc(source)}</code>{esc(top)}" if source else ""),
             ("set", esc(", ".join(f"{k}={v}" for k, v in extra.items()))),
             ("created", esc(s.get("created"))), ("command", f"<code>{esc(s.get('command'))}</code>" if s.get("command") else ""),
             ("directory", f"<code>{esc(run.path)}</code>")]
    body = "".join(banners) + _facts(facts) + _verdict_section(run, info)
    if run.utilisation is not None:  # a promotion writes none today
        body += _utilisation_section(run)
    if not run.is_budget_track:
        body += _crossing_section(info)
    body += _pages_list(run, summaries) + _settings_and_date(s)
    return page(f"Promotion report · {run.name}", body, nav=nav, here="index.html")


# ----------------------------------------------------------------------------------------------------------
# Transfer runs and records


def _transfer_section(transfer: Any, label: str, prefix: str) -> tuple[str, int]:
    info = _get_transfer_info(transfer)
    if not info.rows:
        return note(f"{label}: transfer.json holds no candidate with a short and a long result yet."), 0
    stats_rows = []
    for k, v in info.statistics.items():
        band = _band(*interval(transfer, k))
        stats_rows.append([(esc(k), k, ""), (format_number(v, 3) + band, v, "num")])
    if isinstance(transfer, dict) and transfer.get("short_winner") is not None:
        winners = f"{transfer.get('short_winner')} / {transfer.get('long_winner')}"
        stats_rows.append([("short / long winner", None, ""), (esc(winners), None, "")])
    body = ""
    if stats_rows:
        body += _html.table([("statistic", "statistic"), ("value", "value")], stats_rows, sortable=False)
        boot = transfer.get("bootstrap") if isinstance(transfer, dict) else None
        if isinstance(boot, dict) and boot.get("samples"):
            level = boot.get("level")
            level = f"{100 * level:g}% " if isinstance(level, int | float) else ""
            body += (f"<p class=muted>In brackets: {level}bootstrap confidence intervals from "
                     f"{boot.get('samples')} resamples of the candidates.</p>")
    elif info.computed:
        body += "<p class=muted>computed here from the ranks: " + esc(", ".join(
            f"{k} {v:.3f}" for k, v in info.computed.items())) + "</p>"
    knobs = knob_effects(transfer)
    if knobs:
        body += ("<h3>Which knobs helped at this length</h3><p class=muted>Mean long-track result of the candidates "
                 "that change a knob against those that keep the baseline's value (lower is better; with few "
                 "candidates, knobs changed together cannot be told apart).</p>")
        body += _html.table(
            [("knob", "knob"), ("with", "mean with"), ("without", "mean without"), ("diff", "difference"),
             ("n", "n with / without")],
            [[(esc(r["knob"]), r["knob"], ""), (format_number(r["mean_with"], 4), r["mean_with"], "num"),
              (format_number(r["mean_without"], 4), r["mean_without"], "num"),
              (format_number(r["difference"], 3), r["difference"], "num"),
              (f"{format_number(r['n_with'], 0)} / {format_number(r['n_without'], 0)}", None, "num")]
             for r in knobs])
    figures = [plot_transfer_scatter(transfer, info), plot_rank_change(transfer, info)]
    body += "".join(figure_div(f, f"{prefix}-{i}") for i, f in enumerate(figures))
    return body, len(figures)


def _band(low: float | None, high: float | None) -> str:
    """A confidence interval after its statistic: " [low, high]", or nothing when a bound is missing."""
    return "" if low is None or high is None else f" [{low:.2f}, {high:.2f}]"


def write_transfer_report(run: RunData, out_dir: Path) -> Path:
    if run.transfer is None:
        raise ReportInputError(f"{run.path}: a transfer run without a readable transfer.json yet")
    write_plotly_js(out_dir)
    section, plots = _transfer_section(run.transfer, run.name, "plot-transfer")
    body = "".join(note(n) for n in run.notes) + _TRANSFER_ABOUT + section
    if not run.trials.empty:
        body += "<h2>Runs</h2>" + trials_table_html(run)
    write_atomic(out_dir / "index.html", page(f"Transfer · {run.name}", body, plots=plots))
    return out_dir / "index.html"


def _budget(run: RunData) -> float:
    value = run.settings.get("budget_tokens") or (run.transfer or {}).get("budget_tokens")
    return float(value) if isinstance(value, int | float) else float("inf")


def _length_section(runs: list[RunData]) -> tuple[str, int]:
    """Transfers of one track pair at two or more lengths: their correlations against the token budget."""
    items = [(run.name, run.transfer, run.settings.get("budget_tokens")) for run in runs]
    rows = correlation_by_length(items)
    if len({r["tokens"] for r in rows}) < 2:
        return "", 0

    def ci(r: dict[str, Any], stat: str) -> str:
        return "-" if r[stat] is None else f"{r[stat]:.2f}" + _band(r[f"{stat}_low"], r[f"{stat}_high"])

    table = _html.table(
        [("run", "transfer run"), ("tracks", "tracks"), ("tokens", "long budget (tokens)"), ("n", "candidates"),
         ("spearman", "Spearman [CI]"), ("kendall", "Kendall [CI]"), ("regret", "regret"),
         ("winners", "short / long winner")],
        [[(esc(r["label"]), r["label"], ""), (esc(r["tracks"]), r["tracks"], ""),
          (f"{r['tokens']:,.0f}", r["tokens"], "num"), (format_number(r["n"], 0), r["n"], "num"),
          (ci(r, "spearman"), r["spearman"], "num"), (ci(r, "kendall"), r["kendall"], "num"),
          (format_number(r["regret"], 3), r["regret"], "num"),
          (esc(f"{r['short_winner']} / {r['long_winner']}"), None, "")] for r in rows])
    return ("<h2>Correlation against length</h2>" + table
            + figure_div(plot_correlation_by_length(items), "plot-transfer-length")), 1


_TRANSFER_ABOUT = ("<p class=lead>How well does a candidate's result on the short track predict its result on the "
                   "long track? First, each candidate's short-track against long-track result (or rank when results "
                   "are missing); then the rank change of each candidate from the short to the long track.</p>")


def find_transfer_runs(records_dir: Path, extra: list[Path]) -> list[Path]:
    """Transfer runs: given ones, any under records/, and any in a `runs/` beside records/."""
    candidates = [*extra, *(p.parent for p in records_dir.rglob("settings.json"))]
    runs_dir = records_dir.resolve().parent / "runs"
    if runs_dir.is_dir():
        candidates += [p.parent for p in runs_dir.glob("*/settings.json")]
    found = []
    for path in dict.fromkeys(candidates):
        try:
            settings = json.loads((path / "settings.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            settings = {}
        if (path / "transfer.json").exists() and (path in extra or (isinstance(settings, dict)
                                                                    and settings.get("kind") == "transfer")):
            found.append(path)
    return sorted(found, key=lambda p: (p / "transfer.json").stat().st_mtime, reverse=True)


def write_records_report(records_dir: Path, out_dir: Path, transfer_dirs: list[Path] | None = None) -> Path:
    records = load_records(records_dir)
    if records.empty:
        raise ReportInputError(f"{records_dir}: no record JSON files found (expected records/<track>/<id>.json)")
    transfers = find_transfer_runs(records_dir, list(transfer_dirs or []))
    nav = [("index.html", "Leaderboard")] + ([("transfer.html", "Transfer")] if transfers else [])
    leaderboard = _get_leaderboard_info(records)  # once for the Markdown and the HTML tables
    markdown = leaderboard_markdown(records, leaderboard)
    notes = "".join(note(n) for n in records.attrs.get("notes", []))
    n_candidates = int((records["status"] != "baseline").sum())
    body = (notes + f"<p class=lead>{len(records)} records ({n_candidates} candidates) from <code>{esc(records_dir)}</code>. "
            "Ranked rows are accepted entries (baselines and candidates whose verdict is beats_record); other "
            "candidates are listed unranked, in italics, with their verdict.</p>" + leaderboard_html(records, leaderboard)
            + "<details><summary>Markdown (for the README)</summary><pre>" + html.escape(markdown) + "</pre></details>")
    write_atomic(out_dir / "leaderboard.md", markdown)
    if transfers:
        write_plotly_js(out_dir)
        sections, plots = [], 0
        runs = [load(run_dir) for run_dir in transfers]
        order = sorted(range(len(runs)), key=lambda i: (str(runs[i].settings.get("track")), _budget(runs[i])))
        transfers, runs = [transfers[i] for i in order], [runs[i] for i in order]
        length_section, n = _length_section(runs)
        sections.append(length_section)
        plots += n
        for i, (run_dir, run) in enumerate(zip(transfers, runs)):
            section, n = _transfer_section(run.transfer, run.name, f"plot-transfer-{i}")
            sections.append(f"<h2>{esc(run.name)} <span class=muted>{esc(run_dir)}</span></h2>" + section)
            plots += n
        write_atomic(out_dir / "transfer.html", page("Transfer: short track against long track",
                                                     _TRANSFER_ABOUT + "".join(sections), nav=nav, here="transfer.html",
                                                     plots=plots))
    write_atomic(out_dir / "index.html", page("Leaderboard", body, nav=nav, here="index.html"))
    return out_dir / "index.html"


def is_records_dir(path: Path) -> bool:
    try:
        return not load_records(path).empty
    except ReportInputError:
        return False

