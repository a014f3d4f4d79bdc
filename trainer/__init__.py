"""The single-GPU Blueberry-Nano trainer: ``train(config, reporter) -> RunResult``.

Imports no ray, optuna or plotly (a test checks it)."""

from trainer.config import ConfigError, RunConfig, make_config
from trainer.train import NullReporter, Reporter, RunResult, train

__all__ = ["ConfigError", "NullReporter", "Reporter", "RunConfig", "RunResult", "make_config", "train"]
