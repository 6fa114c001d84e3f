"""Checkpoints: atomic, checksummed, the last K kept, damaged ones skipped."""

from __future__ import annotations

import hashlib

import pytest

from stream_moe.checkpoint import FORMAT, Checkpointer, DamagedCheckpoints, IncompatibleCheckpoint


def test_restore_skips_damaged_checkpoints(tmp_path):
    ckpt = Checkpointer(tmp_path, keep=3)
    for n in range(3):
        ckpt.save({"n": n})
    newest = ckpt.paths()[-1]
    data = bytearray(newest.read_bytes())
    data[-1] ^= 0xFF
    newest.write_bytes(bytes(data))
    assert ckpt.restore() == {"n": 1}
    ckpt.paths()[-2].write_bytes(b"truncated")
    assert ckpt.restore() == {"n": 0}


def test_keeps_the_last_k_and_leaves_no_temporary_files(tmp_path):
    ckpt = Checkpointer(tmp_path, keep=2)
    for n in range(5):
        ckpt.save({"n": n})
    assert [p.name for p in ckpt.paths()] == ["checkpoint-000000000003.pkl", "checkpoint-000000000004.pkl"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [p.name for p in ckpt.paths()]
    assert Checkpointer(tmp_path / "absent").restore() is None


def test_numbering_continues_after_a_restart(tmp_path):
    Checkpointer(tmp_path).save({"n": 0})
    Checkpointer(tmp_path).save({"n": 1})
    assert Checkpointer(tmp_path).restore() == {"n": 1}


def test_a_checkpoint_of_another_format_is_refused_not_skipped(tmp_path):
    ckpt = Checkpointer(tmp_path)
    ckpt.save({"n": 0})
    newest = ckpt.save({"n": 1})
    header, payload = newest.read_bytes().split(b"\n", 1)
    newest.write_bytes(header.replace(b" %d " % FORMAT, b" %d " % (FORMAT + 1)) + b"\n" + payload)
    with pytest.raises(IncompatibleCheckpoint, match=f"format {FORMAT + 1}.*reads format {FORMAT}"):
        ckpt.restore()
    assert len(ckpt.paths()) == 2  # nothing removed


def test_a_checkpoint_from_before_formats_is_format_one(tmp_path):
    ckpt = Checkpointer(tmp_path)
    path = ckpt.save({"n": 0})
    _, payload = path.read_bytes().split(b"\n", 1)
    path.write_bytes(hashlib.sha256(payload).hexdigest().encode() + b"\n" + payload)  # the header before formats
    with pytest.raises(IncompatibleCheckpoint, match="format 1"):
        ckpt.restore()


def test_all_damaged_refuses_to_start_afresh_and_temporary_files_are_removed(tmp_path):
    ckpt = Checkpointer(tmp_path)
    for n in range(2):
        ckpt.save({"n": n})
    for path in ckpt.paths():
        path.write_bytes(b"garbage")
    with pytest.raises(DamagedCheckpoints, match="every checkpoint .* is damaged"):
        ckpt.restore()
    leftover = tmp_path / ".checkpoint-000000000009.pkl.4242.tmp"
    leftover.write_bytes(b"half a checkpoint")
    ckpt.remove_temporary()
    assert not leftover.exists() and len(ckpt.paths()) == 2
