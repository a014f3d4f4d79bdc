"""search.records: writing records without overwriting, the shipped baselines."""

from __future__ import annotations

import json
import subprocess
import threading
from pathlib import Path
from typing import Any

from search.records import baseline_record, write_new_record
from trainer.config import RECORD_HYPER, make_config

ROOT = Path(__file__).resolve().parents[2]


def test_records_are_never_overwritten_even_by_concurrent_writers(tmp_path):
    directory = tmp_path / "records" / "tiny-speedrun"
    paths: list[Path] = []

    def make(n: int) -> dict[str, Any]:
        return {"id": f"20260101-abcdef12-{n}", "payload": "x" * 10_000}

    def writer() -> None:
        paths.append(write_new_record(directory, make)[0])

    threads = [threading.Thread(target=writer) for _ in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert len({p.name for p in paths}) == 8
    assert sorted(p.name for p in directory.iterdir()) == sorted(f"20260101-abcdef12-{n}.json" for n in range(1, 9))
    for p in paths:
        assert json.loads(p.read_text())["id"] == p.stem  # complete, and its id names its file
    before = (directory / "20260101-abcdef12-1.json").read_text()
    write_new_record(directory, make)
    assert (directory / "20260101-abcdef12-1.json").read_text() == before


def test_shipped_baseline_records(tmp_path):
    from trainer.__main__ import _config_from_record

    expected = {"speedrun-4.5": (182.0, 6_086_656, None), "speedrun-3.5": (547.0, 18_767_872, None),
                "marathon": (9_420.0, 1_000_000_000, 3.1940)}
    for track, (time_s, tokens, val_loss) in expected.items():
        path = ROOT / "records" / "baseline" / f"{track}.json"
        data = json.loads(path.read_text())
        assert data["status"] == "baseline" and data["track"] == track and data["gpu"] == "RTX 4090"
        assert data["time_s"] == time_s and data["tokens"] == tokens and data["val_loss"] == val_loss
        assert "Vuk Rosić" in data["user"]
        config = _config_from_record(str(path), {})  # what `python -m trainer --record` reads
        assert config.hp == RECORD_HYPER == make_config(track).hp
        assert config.track.name == track
        assert {k: v for k, v in data.items() if k != "config"} == \
            {k: v for k, v in json.loads(json.dumps(baseline_record(track))).items() if k != "config"}
        ignored = subprocess.run(["git", "-C", str(ROOT), "check-ignore", "-q", str(path)])
        assert ignored.returncode == 1, f"{path} is git-ignored"


