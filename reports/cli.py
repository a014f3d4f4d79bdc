"""`python -m reports PATH`: a run directory -> its HTML report; a records directory -> the leaderboard.

Prints the path of the page to open. A path that cannot be reported on gives one line on stderr and
exit status 2, never a traceback (`--debug` shows one for an unexpected failure).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from chores.files import RUN_MARKERS

from ._data import ReportInputError, load
from ._report import is_records_dir, write_records_report, write_search_report, write_transfer_report
from .leaderboard import leaderboard_markdown


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m reports",
        description="Write an offline plotly HTML report for a run directory (runs/<name>) or the leaderboard "
                    "for a records directory (records/).")
    parser.add_argument("path", help="a run directory (search or transfer) or a records directory")
    parser.add_argument("--out", type=Path, help="folder for the report (default: PATH/report)")
    parser.add_argument("--transfer", type=Path, action="append", default=[], metavar="RUN",
                        help="records: a transfer run directory to include (found under records/ and ../runs/ too)")
    parser.add_argument("--markdown", action="store_true", help="records: also print the leaderboard as Markdown")
    parser.add_argument("--debug", action="store_true", help="show tracebacks of unexpected errors")
    return parser


def check_transfer_dir(path: Path) -> None:
    """A --transfer folder must be a transfer run (search.transfer's runs/<name>), never silently ignored."""
    if not path.exists():
        raise ReportInputError(f"--transfer {path}: no such file or directory")
    if not path.is_dir():
        raise ReportInputError(f"--transfer {path}: not a directory (give a transfer run such as runs/<name>)")
    try:
        settings = json.loads((path / "settings.json").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        settings = None
    kind = settings.get("kind") if isinstance(settings, dict) else None
    if kind not in (None, "transfer"):
        raise ReportInputError(f"--transfer {path}: a {kind} run, not a transfer run")
    if not (path / "transfer.json").is_file():
        raise ReportInputError(f"--transfer {path}: not a transfer run (no transfer.json)")


def make_report(path: Path, out: Path | None = None, *, transfer_dirs: list[Path] | None = None) -> Path:
    """Write the report that fits `path`; returns the index page. Raises ReportInputError for bad input."""
    if not path.exists():
        raise ReportInputError(f"{path}: no such file or directory")
    if not path.is_dir():
        raise ReportInputError(f"{path}: not a directory (give a run directory such as runs/<name>, or records/)")
    for transfer_dir in transfer_dirs or []:
        check_transfer_dir(transfer_dir)
    out = out or path / "report"
    if any((path / m).exists() for m in RUN_MARKERS):
        if transfer_dirs:
            raise ReportInputError(f"--transfer is for a records directory; {path} is a run directory")
        run = load(path)
        index = write_transfer_report(run, out) if run.kind == "transfer" else write_search_report(run, out)
        for text in run.notes:  # after the report, so that a run that cannot be reported gives one line
            logging.getLogger("reports").warning("note: %s", text)
        return index
    if is_records_dir(path):
        return write_records_report(path, out, transfer_dirs)
    runs = sorted(p.parent.name for p in path.glob("*/settings.json"))
    hint = f"; it holds {len(runs)} runs, give one of them (e.g. {path / runs[0]})" if runs else ""
    raise ReportInputError(f"{path}: neither a run directory (settings.json, trials.parquet) nor a records "
                           f"directory (record JSON files){hint}")


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="reports: %(message)s", stream=sys.stderr)
    path = Path(args.path)
    try:
        index = make_report(path, args.out, transfer_dirs=args.transfer)
        if args.markdown:
            from ._data import load_records

            print(leaderboard_markdown(load_records(path)))
    except ReportInputError as exc:
        print(f"reports: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        if args.debug:
            raise
        print(f"reports: cannot write the report: {exc.strerror or exc} ({exc.filename or args.out}); "
              "choose another folder with --out", file=sys.stderr)
        return 2
    except Exception as exc:
        if args.debug:
            raise
        print(f"reports: unexpected error while reporting {path}: {type(exc).__name__}: {exc} "
              "(rerun with --debug for the traceback)", file=sys.stderr)
        return 1
    print(index)
    return 0
