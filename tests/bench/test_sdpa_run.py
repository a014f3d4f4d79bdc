import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parents[2]


def test_turns_the_named_backends_off_then_runs_the_trainer(tmp_path):
    code = ("import runpy, sys, torch; sys.argv = ['bench/sdpa_run.py', 'cudnn,flash', '--version-check'];"
            "import importlib.util as u; spec = u.spec_from_file_location('s', 'bench/sdpa_run.py');"
            "m = u.module_from_spec(spec); spec.loader.exec_module(m);"
            "m.runpy.run_module = lambda *a, **k: print('flags', torch.backends.cuda.cudnn_sdp_enabled(),"
            " torch.backends.cuda.flash_sdp_enabled(), torch.backends.cuda.mem_efficient_sdp_enabled(), sys.argv);"
            "m.main()")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "attention backends off: cudnn, flash" in proc.stdout
    assert "flags False False True ['trainer', '--version-check']" in proc.stdout

    out = tmp_path / "run"
    proc = subprocess.run([sys.executable, "bench/sdpa_run.py", "cudnn", "--quiet", "--out", str(out),
                           "--set", "max_tokens=2048"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert json.loads((out / "result.json").read_text())["tokens"] == 2048


def test_an_unknown_backend_is_refused_by_name():
    proc = subprocess.run([sys.executable, "bench/sdpa_run.py", "cudnn,fast", "--quiet"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    assert proc.stderr.strip() == "error: unknown attention backend fast; allowed: cudnn, flash, mem_efficient, math"
    proc = subprocess.run([sys.executable, "bench/sdpa_run.py"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1 and proc.stderr.startswith("usage: python bench/sdpa_run.py BACKEND")
