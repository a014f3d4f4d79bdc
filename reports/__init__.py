"""Reports for Blueberry Tune: read run and record directories with pandas, write offline plotly HTML.

Never imports ray or torch, nor trainer/search/spaces: a run directory copied to a laptop is enough.

    run = reports.load("runs/<name>")          # RunData: settings, trials, history, best, kind
    reports.write_search_report(run, out_dir)  # or: python -m reports runs/<name>
    reports.leaderboard_markdown(reports.load_records("records"))

Each plot is a pure ``_get_<plot>_info(run)`` that computes plain numbers and a thin ``plot_<plot>(run, info)``
that returns a plotly Figure; a page computes the info once and passes it to the plot (and its tables).
"""

from ._data import CENSORED, RECORD_COLUMNS, ReportInputError, RunData, load, load_records
from ._report import write_records_report, write_search_report, write_transfer_report
from .cli import make_report
from .leaderboard import leaderboard_html, leaderboard_markdown
from .loss_curves import plot_loss_curves
from .optimization_history import plot_optimization_history
from .parallel_coordinate import plot_parallel_coordinate
from .param_importances import plot_param_importances
from .slice import plot_slice
from .time_to_target import plot_time_to_target
from .transfer import (
    correlation_by_length,
    knob_effects,
    plot_correlation_by_length,
    plot_rank_change,
    plot_transfer_scatter,
)
from .trials_table import trials_table_html

__all__ = [
    "CENSORED", "RECORD_COLUMNS", "ReportInputError", "RunData", "correlation_by_length", "knob_effects",
    "leaderboard_html", "leaderboard_markdown", "load",
    "load_records", "make_report", "plot_loss_curves", "plot_optimization_history", "plot_parallel_coordinate",
    "plot_correlation_by_length", "plot_param_importances", "plot_rank_change", "plot_slice", "plot_time_to_target", "plot_transfer_scatter",
    "trials_table_html", "write_records_report", "write_search_report", "write_transfer_report",
]
