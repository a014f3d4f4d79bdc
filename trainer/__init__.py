"""The single-GPU Blueberry-Nano trainer: ``train(config, reporter) -> RunResult``.

Imports no ray, optuna or plotly (a test checks it)."""

from chores.bytecode import use_bytecode_cache
from chores.collector import paused

use_bytecode_cache()  # before torch is imported: where bytecode may not be written, keep it in our cache

with paused():  # torch and the trainer: objects that live as long as the process, so no garbage to look for
    from trainer.config import ConfigError, RunConfig, make_config
    from trainer.train import NullReporter, Reporter, RunResult, train

__all__ = ["ConfigError", "NullReporter", "Reporter", "RunConfig", "RunResult", "make_config", "train"]
