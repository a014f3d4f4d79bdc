"""``python -m trainer``: one timed run, no Ray.

    python -m trainer                                   # CPU: tiny-speedrun on the shipped sample
    python -m trainer --track speedrun-4.5 --set muon_lr=0.02 --out runs/my-run
    python -m trainer --record records/speedrun-4.5/<id>.json   # reproduce a record's run
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import sys
from pathlib import Path

from trainer import checks
from trainer.config import TRACKS, ConfigError, RunConfig, make_config, parse_set, preset
from trainer.io import atomic_write_json, new_run_dir


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m trainer", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--track", default=None,
                   help=f"one of {', '.join(TRACKS)} (default: speedrun-4.5 with a GPU, tiny-speedrun without)")
    p.add_argument("--preset", default=None, help="model preset (default: the track's)")
    p.add_argument("--data", default=None, help="data source: sample, offline, a path/glob, or an HF dataset name")
    p.add_argument("--set", dest="overrides", action="append", metavar="KEY=VALUE",
                   help="override a setting (repeatable), e.g. --set muon_lr=0.02 --set schedule=cosine")
    p.add_argument("--record", default=None, help="rerun the config stored in a record JSON")
    p.add_argument("--out", default=None, help="run directory (default: runs/trainer-<track>-<time>)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def _config_from_record(path: str, overrides: dict[str, str]) -> RunConfig:
    try:
        record = json.loads(Path(path).read_text())
        cfg = RunConfig.from_dict(record["config"])
    except FileNotFoundError:
        raise ConfigError(f"record {path} does not exist") from None
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise ConfigError(f"record {path} is not a valid record JSON ({type(exc).__name__}: {exc})") from None
    from trainer.config import apply_overrides

    return apply_overrides(cfg, overrides)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        checks.existing_file("--record", args.record)
        checks.folder_to_write("--out", args.out)
        overrides = parse_set(args.overrides)
        if args.record:
            config = _config_from_record(args.record, overrides)
        else:
            import torch

            track = args.track or ("speedrun-4.5" if torch.cuda.is_available() else "tiny-speedrun")
            if args.preset:
                preset(args.preset)
            config = make_config(track, preset_name=args.preset, data=args.data, overrides=overrides)
        out = Path(args.out) if args.out else None
        existed = out is not None and out.exists()
        run_dir = new_run_dir(out or Path("runs"), None if out else f"trainer-{config.track.name}", exact=bool(out))
        atomic_write_json(run_dir / "config.json", {"config": config.to_dict(), "argv": sys.argv})
        from trainer.train import train

        try:
            result = train(config, progress=not args.quiet and sys.stderr.isatty())
        except ConfigError:  # refused before training (bad data, tokenizer): no run directory left behind
            (run_dir / "config.json").unlink(missing_ok=True)
            if not existed:
                with contextlib.suppress(OSError):
                    run_dir.rmdir()
            raise
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    atomic_write_json(run_dir / "result.json", result.to_dict())
    s = result.summary()
    print(json.dumps({k: s[k] for k in ("status", "crossings", "steps", "tokens", "clock_s", "final_train_loss",
                                        "final_smoothed_loss", "final_val_loss", "tokens_per_s", "mfu",
                                        "startup_s", "startup_phases", "compile_cache", "device")}, indent=2, default=str))
    print(f"result: {run_dir / 'result.json'}")
    return 0 if result.status in ("reached", "budget_exhausted") else 1


if __name__ == "__main__":
    sys.exit(main())
