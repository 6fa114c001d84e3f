"""The router learns a correctness mask, grows without disturbing what it learned, and checkpoints exactly."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

from stream_moe.models.router import Router


def mask_of(z: np.ndarray) -> np.ndarray:
    """Expert 0 is right where the first input is positive, expert 1 elsewhere, expert 2 never."""
    right0 = z[:, 0] > 0
    return np.stack([right0, ~right0, np.zeros_like(right0)], axis=1).astype(np.float32)


def test_router_learns_the_mask():
    rng = np.random.default_rng(0)
    router = Router(n_inputs=4, n_outputs=3, hidden=(32, 16), batch_size=64, seed=0, device="cpu")
    for _ in range(150):
        z = rng.normal(size=(64, 4)).astype(np.float32)
        router.observe(z, mask_of(z))
    assert router.n_steps == 150
    z = rng.normal(size=(2000, 4)).astype(np.float32)
    top = router.scores(z).argmax(axis=1)
    assert np.mean(top == np.where(z[:, 0] > 0, 0, 1)) > 0.95
    assert not (top == 2).any()


@pytest.mark.parametrize("dropout, balance", [(0.2, 0.01), (0.0, 0.0), (0.5, 1.0)])
def test_training_gradients_are_autograds_of_the_documented_loss(dropout, balance):
    rng = np.random.default_rng(3)
    router = Router(n_inputs=4, n_outputs=5, hidden=(16, 8), dropout=dropout, balance_weight=balance, seed=0,
                    device="cpu")
    router.layers.double()
    z = torch.from_numpy(rng.normal(size=(32, 4)))
    mask = torch.from_numpy((rng.random((32, 5)) < 0.3).astype(float))
    draws = router._dropout_gen.get_state()
    with torch.no_grad():
        router._gradients(z, mask)
    ours = [p.grad.clone() for p in router.layers.parameters()]
    router._dropout_gen.set_state(draws)  # the same dropout, through autograd
    h = z
    for layer in router.layers[:-1]:
        h = torch.relu(layer(h))
        if dropout:
            h = h * (torch.rand(h.shape, generator=router._dropout_gen) >= dropout) / (1 - dropout)
    logits = router.layers[-1](h)
    loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, mask)
    if balance:
        importance = torch.softmax(logits, dim=1).mean(dim=0)
        loss = loss + balance * importance.var() / importance.mean() ** 2
    for mine, autograds in zip(ours, torch.autograd.grad(loss, list(router.layers.parameters()))):
        torch.testing.assert_close(mine, autograds, rtol=1e-9, atol=1e-12)


def test_router_trains_only_every_batch_size():
    router = Router(n_inputs=2, n_outputs=2, batch_size=10, seed=0, device="cpu")
    z = np.ones((4, 2), dtype=np.float32)
    steps = [router.observe(z, np.ones((4, 2))) for _ in range(5)]
    assert steps == [False, False, True, False, False]  # 4, 8, 12 -> step, 4, 8


def test_growth_keeps_old_outputs_bit_identical():
    rng = np.random.default_rng(1)
    router = Router(n_inputs=3, n_outputs=2, batch_size=16, seed=0, device="cpu")
    for _ in range(10):
        z = rng.normal(size=(16, 3)).astype(np.float32)
        router.observe(z, np.ones((16, 2)))
    z = rng.normal(size=(8, 3)).astype(np.float32)
    before = router.scores(z)
    router.grow_inputs(5)
    widened = np.pad(z, ((0, 0), (0, 2)))
    assert np.array_equal(router.scores(widened), before)
    assert router.add_output() == 2
    after = router.scores(widened)
    assert after.shape == (8, 3)
    assert np.array_equal(after[:, :2], before)
    # and it still trains with the new shapes (Adam moments carried over)
    for _ in range(3):
        router.observe(rng.normal(size=(16, 5)).astype(np.float32), np.ones((16, 3)))
    assert router.n_steps == 13


def test_pickle_round_trip_continues_identically():
    rng = np.random.default_rng(2)
    a = Router(n_inputs=3, n_outputs=3, batch_size=8, seed=4, device="cpu")
    for _ in range(5):
        z = rng.normal(size=(8, 3)).astype(np.float32)
        a.observe(z, mask_of(z))
    b = pickle.loads(pickle.dumps(a))
    for _ in range(5):
        z = rng.normal(size=(8, 3)).astype(np.float32)
        a.observe(z, mask_of(z))
        b.observe(z, mask_of(z))
    z = rng.normal(size=(20, 3)).astype(np.float32)
    assert np.array_equal(a.scores(z), b.scores(z))


def test_same_seed_same_router():
    z = np.random.default_rng(3).normal(size=(16, 3)).astype(np.float32)
    a, b, c = (Router(3, 2, batch_size=16, seed=s, device="cpu") for s in (5, 5, 6))
    for r in (a, b, c):
        r.observe(z, mask_of(z)[:, :2])
    assert np.array_equal(a.scores(z), b.scores(z))
    assert not np.array_equal(a.scores(z), c.scores(z))
