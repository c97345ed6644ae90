"""torch's CPU threads: the process's cores, fewer on a busy machine, or what --threads says."""

from __future__ import annotations

import pytest
import torch
from click.testing import CliRunner

from srrestore.cli.main import cli
from srrestore.engine.threads import auto_threads, available_cores, set_threads
from srrestore.errors import ConfigError


@pytest.mark.parametrize(("cores", "load", "expected"), [
    (2, 0.0, 2),    # idle: every core
    (2, 1.4, 1),    # one competing job: one thread (2 threads measured 2.8x slower then)
    (2, 7.0, 1),    # saturated: never fewer than one
    (16, 3.6, 12),  # a big machine with a few jobs
    (4, 0.4, 4),
])
def test_auto_threads_leaves_out_the_busy_cores(cores, load, expected):
    assert auto_threads(cores, load) == expected


def test_available_cores_is_the_affinity_mask():
    import os

    assert available_cores() == len(os.sched_getaffinity(0))


def test_set_threads_applies_and_refuses_nonsense():
    assert set_threads(1) == 1 and torch.get_num_threads() == 1
    assert 1 <= set_threads(None) <= available_cores()
    with pytest.raises(ConfigError, match="at least 1"):
        set_threads(0)


@pytest.mark.parametrize("command", ["models", "restore", "train", "finetune", "evaluate", "report", "average"])
def test_every_command_takes_threads(command):
    assert "--threads" in CliRunner().invoke(cli, [command, "--help"]).output
    if command == "models":
        result = CliRunner().invoke(cli, ["models", "--threads", "2"])
        assert result.exit_code == 0 and torch.get_num_threads() == 2
