"""Checks shared by search.run, search.promote and search.transfer, made before Ray starts or anything is
written: Ray's resource flags, --storage, run names, the runs' device settings, and a lock per run directory. No ray
import here.
"""

from __future__ import annotations

import argparse
import contextlib
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from urllib.parse import urlsplit

from trainer import checks
from trainer.config import ConfigError, RunConfig

# the URI schemes pyarrow's filesystems (Ray Tune's storage) understand
STORAGE_SCHEMES = ("file", "s3", "gs", "gcs", "hdfs", "viewfs", "abfs", "abfss")


def ray_flags(args: argparse.Namespace) -> None:
    """``--gpus-per-trial``, ``--cpus-per-trial``, ``--max-concurrent``, ``--num-cpus`` (where the command has
    them): finite, in range, and a trial that fits the local Ray (else Ray waits for it for ever). The trainer trains
    on one GPU, so a trial takes at most one (a share of one where trials share a GPU)."""
    checks.number("--gpus-per-trial", getattr(args, "gpus_per_trial", None), above=0, at_most=1)
    checks.positive("--cpus-per-trial", getattr(args, "cpus_per_trial", None))
    checks.count("--max-concurrent", getattr(args, "max_concurrent", None))
    num_cpus = getattr(args, "num_cpus", None)
    checks.count("--num-cpus", num_cpus)
    cpus = getattr(args, "cpus_per_trial", None)
    if cpus is not None and not getattr(args, "address", None):
        available = num_cpus if num_cpus is not None else os.cpu_count() or 1
        if cpus > available:
            where = f"--num-cpus {num_cpus}" if num_cpus is not None else f"this machine's {available} CPUs"
            raise ConfigError(f"--cpus-per-trial {cpus:g} does not fit in {where}: no trial could ever start")


def runs_can_start(configs: Iterable[RunConfig], address: str | None) -> None:
    """Settings that only the runs' device can refuse (``runtime.attention=fa4``: a Hopper or Blackwell GPU and its
    package; ``runtime.fp8=true``: a GPU that does FP8 matmuls), checked here before Ray starts when the runs train
    on this machine: one clear line, not a failed trial per run. With ``--address`` the cluster's GPUs decide, and
    a run they refuse is recorded as failed."""
    if address is not None:
        return
    from trainer.train import check_device_settings

    for config in configs:
        check_device_settings(config)


def storage(flag: str, value: str | None) -> None:
    """Ray's storage: a local folder (not a file) or a URI whose scheme pyarrow knows."""
    if value is None:
        return
    if "://" in value:
        scheme = urlsplit(value).scheme.lower()
        if scheme not in STORAGE_SCHEMES:
            raise ConfigError(f"{flag} {value}: unknown scheme {scheme + '://'!r}; give a local folder or a URI "
                              f"with one of {', '.join(s + '://' for s in STORAGE_SCHEMES)}")
        if scheme == "file":
            checks.folder_to_write(flag, urlsplit(value).path)
        return
    checks.folder_to_write(flag, value)


@contextlib.contextmanager
def working_on(directory: Path, command: str) -> Iterator[None]:
    """One command at a time on a run directory (a search's, a promotion's): a lock that goes with the process,
    killed or not; a second command is refused with one line."""
    from chores.files import LockBusy, file_lock

    try:
        with file_lock(Path(directory) / ".lock", wait=False):
            yield
    except LockBusy:
        raise ConfigError(f"{directory}: another {command} is working on it right now") from None


def promote_flags(args: argparse.Namespace) -> None:
    """search.promote's flags of the kinds every command shares (its own rules stay in promote._validate)."""
    ray_flags(args)
    checks.positive("--time-budget-s", getattr(args, "time_budget_s", None))
    checks.folder_to_write("--records", getattr(args, "records", None))
    checks.existing_file("--control-record", getattr(args, "control_record", None))


def transfer_flags(args: argparse.Namespace) -> None:
    """search.transfer's flags of the kinds every command shares (its own rules stay in transfer._validate)."""
    ray_flags(args)  # (the records folder is checked where it is read, by load_records)
    checks.folder_to_write("--runs-dir", getattr(args, "runs_dir", None))
    checks.plain_name("--name", getattr(args, "name", None))
