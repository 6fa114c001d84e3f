"""`stream-moe serve` refuses to start, with one line and exit status 1, rather than lose or mislabel what was learned:
a checkpoint directory it cannot write, checkpoints that are all damaged, a checkpoint of another model. Leftovers
of a checkpoint write killed midway are removed."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

import yaml

from stream_moe.checkpoint import Checkpointer
from stream_moe.joins import JoinLimits
from stream_moe.predictor import Predictor
from stream_moe.shards import Shards
from river import tree

REPO = pathlib.Path(__file__).resolve().parent.parent


def serve(tmp_path, *args, **serve_settings) -> subprocess.CompletedProcess:
    config = tmp_path / "service.yaml"
    config.write_text(yaml.safe_dump({
        "model": {"name": "hoeffding-tree"},
        "serve": {"out": str(tmp_path / "out"), "checkpoint_dir": str(tmp_path / "ckpt"), "embedded_n": 300,
                  "http_port": 0, **serve_settings},
    }))
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "stream_moe.cli", "serve", "--config", str(config), *args],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=300)


def error_line(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 1 and "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("stream-moe serve: error:")]
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_an_unwritable_checkpoint_dir_is_refused_at_start(tmp_path):
    (tmp_path / "a-file").write_text("")
    line = error_line(serve(tmp_path, checkpoint_dir=str(tmp_path / "a-file" / "ckpt")))
    assert "checkpoint_dir" in line and "a-file/ckpt" in line and "not writable" in line


def test_damaged_checkpoints_and_another_models_checkpoint_are_refused(tmp_path):
    assert serve(tmp_path).returncode == 0  # 300 events learned, checkpointed
    line = error_line(serve(tmp_path, "--model", "fast-tree"))
    assert "'hoeffding-tree', not the configured 'fast-tree'" in line

    shard = tmp_path / "ckpt" / "shard-0"
    for path in Checkpointer(shard).paths():
        path.write_bytes(b"damaged")
    assert "every checkpoint" in error_line(serve(tmp_path))
    assert serve(tmp_path, allow_fresh_start=True).returncode == 0


def test_leftover_temporary_files_are_removed_when_a_shard_is_taken(tmp_path):
    shard_dir = tmp_path / "shard-0"
    shard_dir.mkdir()
    leftover = shard_dir / ".checkpoint-000000000000.pkl.99.tmp"
    leftover.write_bytes(b"half")
    shards = Shards(lambda: Predictor(tree.HoeffdingTreeClassifier(), "ht"), checkpoint_dir=tmp_path,
                    limits=JoinLimits())
    shards.get(0)
    assert not leftover.exists()
