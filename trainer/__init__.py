"""The single-GPU Blueberry-Nano trainer: ``train(config, reporter) -> RunResult``.

Imports no ray, optuna or plotly (a test checks it)."""

from chores.bytecode import use_bytecode_cache

use_bytecode_cache()  # before torch is imported: where bytecode may not be written, keep it in our cache

from trainer.config import ConfigError, RunConfig, make_config  # noqa: E402
from trainer.train import NullReporter, Reporter, RunResult, train  # noqa: E402

__all__ = ["ConfigError", "NullReporter", "Reporter", "RunConfig", "RunResult", "make_config", "train"]
