"""Under torchrun, an output that exists stops every rank at once with one line each.

Two processes on the CPU with the gloo backend, started as torchrun starts its
workers (``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``,
``MASTER_PORT``), each running ``srrestore train``. Only rank 0 checks the
output; before the check's result was shared, the other ranks went on into
DistributedDataParallel's constructor and waited there for rank 0 (until NCCL's
timeout on GPUs).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import imageio.v3 as iio
from skimage import data

WORLD_SIZE = 2
LIMIT_S = 60  # both ranks must be done well within this (imports take a few seconds)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_an_existing_output_fails_every_rank_at_once_with_one_line(tmp_path):
    images = tmp_path / "hr"
    images.mkdir()
    iio.imwrite(images / "astronaut.png", data.astronaut()[:96, 100:196])
    iio.imwrite(images / "coffee.png", data.coffee()[100:196, 200:296])
    recipe = tmp_path / "tiny.toml"
    recipe.write_text('generator = "test-tiny"\ndiscriminator = "test-tiny"\npatch_size = 32\nbatch_size = 2\n'
                      '[loss]\ncontent = "feature-matching"\ngamma = 0.01\n')
    out = tmp_path / "model.safetensors"
    out.write_bytes(b"an earlier model")
    command = [sys.executable, "-m", "srrestore", "train", str(images), "--out", str(out), "--config", str(recipe),
               "--scale", "2", "--pretrain-steps", "2", "--gan-steps", "1", "--device", "cpu", "--quiet"]
    port = free_port()
    start = time.monotonic()
    ranks = [
        subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={
            **os.environ, "RANK": str(rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": str(WORLD_SIZE),
            "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "OMP_NUM_THREADS": "1",
        })
        for rank in range(WORLD_SIZE)
    ]
    try:
        outputs = [rank.communicate(timeout=LIMIT_S) for rank in ranks]
    finally:
        for rank in ranks:
            rank.kill()
    assert time.monotonic() - start < LIMIT_S
    expected = f"srrestore: error: output {out} exists; pass --overwrite to replace it"
    for rank, (stdout, stderr) in zip(ranks, outputs):
        assert rank.returncode == 1, stderr
        assert stderr.splitlines() == [expected] and stdout == ""
    assert out.read_bytes() == b"an earlier model"
