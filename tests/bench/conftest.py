import importlib.util
from pathlib import Path

import pytest

BENCH = Path(__file__).parents[2] / "bench"


@pytest.fixture
def bench_script(monkeypatch):
    """Loads ``bench/<name>.py`` as a module named ``name`` (the bench scripts are files, not a package), with
    ``bench/`` on the path as it is for a script run from there (some import others)."""
    monkeypatch.syspath_prepend(str(BENCH))

    def load(name: str):
        spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    return load
