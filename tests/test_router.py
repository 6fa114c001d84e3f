"""The router learns a correctness mask, grows without disturbing what it learned, and checkpoints exactly."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

from stream_moe.models import router as router_module
from stream_moe.models.router import Layers, Router


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


def in_double(router: Router) -> Router:
    """The router's parameters in float64, so that its hand-written passes can be held to autograd's to 1e-9."""
    router._place(*(Layers(layers.sizes, layers.flat.double()) for layers in (router.params, router.exp_avg,
                                                                                   router.exp_avg_sq)))
    return router


def tensors(layers: Layers) -> list[torch.Tensor]:
    return [t for pair in zip(layers.weights, layers.biases) for t in pair]


@pytest.mark.parametrize("dropout, balance", [(0.2, 0.01), (0.0, 0.0), (0.5, 1.0)])
def test_training_gradients_are_autograds_of_the_documented_loss(dropout, balance):
    rng = np.random.default_rng(3)
    router = in_double(Router(n_inputs=4, n_outputs=5, hidden=(16, 8), dropout=dropout, balance_weight=balance,
                              seed=0, device="cpu"))
    z = torch.from_numpy(rng.normal(size=(32, 4)))
    mask = torch.from_numpy((rng.random((32, 5)) < 0.3).astype(float))
    draws = router._dropout_rng.bit_generator.state
    with torch.no_grad():
        router._gradients(z, mask, router._keep_scales(32))
    ours = [t.clone() for t in tensors(router.grads)]
    # the same dropout draws (one per hidden unit and row, layer after layer), through autograd
    router._dropout_rng.bit_generator.state = draws
    kept = torch.from_numpy(router._dropout_rng.random((32, 16 + 8), dtype=np.float32) >= dropout) / (1 - dropout)
    params = [t.clone().requires_grad_() for t in tensors(router.params)]
    h, at = z, 0
    for weight, bias in zip(params[:-2:2], params[1:-2:2]):
        h = torch.relu(h @ weight.T + bias)
        if dropout:
            h = h * kept[:, at : at + h.shape[1]]
        at += h.shape[1]
    logits = h @ params[-2].T + params[-1]
    loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, mask)
    if balance:
        importance = torch.softmax(logits, dim=1).mean(dim=0)
        loss = loss + balance * importance.var() / importance.mean() ** 2
    for mine, autograds in zip(ours, torch.autograd.grad(loss, params)):
        torch.testing.assert_close(mine, autograds, rtol=1e-9, atol=1e-12)


def test_training_steps_are_torch_adams():
    rng = np.random.default_rng(4)
    router = in_double(Router(n_inputs=3, n_outputs=4, hidden=(8, 8), lr=0.01, seed=1, device="cpu"))
    params = [torch.nn.Parameter(t.clone()) for t in tensors(router.params)]
    adam = torch.optim.Adam(params, lr=0.01, foreach=False)
    for step in range(20):
        z = torch.from_numpy(rng.normal(size=(16, 3)))
        with torch.no_grad():
            router._gradients(z, torch.from_numpy((rng.random((16, router.n_outputs)) < 0.5).astype(float)),
                             router._keep_scales(16))
        for param, grad in zip(params, tensors(router.grads)):
            param.grad = grad.clone()
        router._adam_step()
        adam.step()
        if step == 9:  # growth keeps the moments: the next steps still match Adam's on the grown parameters
            router.add_output()
            with torch.no_grad():
                for k in (-2, -1):  # the last layer's weight and bias each gain a row
                    old = params[k]
                    grown = torch.nn.Parameter(torch.cat([old.data, tensors(router.params)[k][-1:].clone()]))
                    state = adam.state.pop(old)
                    for key in ("exp_avg", "exp_avg_sq"):
                        state[key] = torch.cat([state[key], state[key].new_zeros((1, *state[key].shape[1:]))])
                    adam.param_groups[0]["params"][len(params) + k] = grown
                    adam.state[grown] = state
                    params[k] = grown
    for ours, torchs in zip(tensors(router.params), params):
        torch.testing.assert_close(ours, torchs.data, rtol=1e-12, atol=1e-12)
    for name in ("exp_avg", "exp_avg_sq"):
        for ours, param in zip(tensors(getattr(router, name)), params):
            torch.testing.assert_close(ours, adam.state[param][name], rtol=1e-12, atol=1e-15)


def test_moments_of_parameters_without_gradient_never_turn_denormal():
    """A dead unit's first moment decays 0.9x a step; left alone it sticks at the smallest denormal float, where
    arithmetic is about 100x slower."""
    rng = np.random.default_rng(5)
    router = Router(n_inputs=3, n_outputs=2, hidden=(8,), batch_size=16, seed=0, device="cpu")
    z = rng.normal(size=(16, 3)).astype(np.float32)
    router.observe(z, mask_of(z)[:, :2])
    router.grads.flat.zero_()  # from now on no gradient at all, for longer than the first moments take to underflow
    for _ in range(1500):
        router._adam_step()
    smallest_normal = torch.finfo(torch.float32).tiny
    for moment in (router.exp_avg.flat, router.exp_avg_sq.flat):
        assert not ((moment != 0) & (moment.abs() < smallest_normal)).any()
    assert (router.exp_avg.flat == 0).all()
    assert (router.exp_avg_sq.flat > 0).any()  # the second moments decay 0.999x: still there, and still normal


def test_router_trains_on_every_batch_size_rows_in_order():
    router = Router(n_inputs=2, n_outputs=2, batch_size=10, seed=0, device="cpu")
    z = np.ones((4, 2), dtype=np.float32)
    steps = [router.observe(z, np.ones((4, 2))) for _ in range(5)]
    assert steps == [False, False, True, False, True]  # 4, 8, 12 -> a step on 10, 2 left, 6, 10 -> a step
    assert router.n_steps == 2


def test_a_big_observation_trains_as_the_same_rows_in_batch_size_pieces():
    rng = np.random.default_rng(6)
    z = rng.normal(size=(100, 3)).astype(np.float32)
    whole, pieces = (Router(n_inputs=3, n_outputs=3, batch_size=32, seed=2, device="cpu") for _ in range(2))
    whole.observe(z[:70], mask_of(z[:70]))
    whole.observe(z[70:], mask_of(z[70:]))
    for start in range(0, 100, 16):
        pieces.observe(z[start : start + 16], mask_of(z[start : start + 16]))
    assert whole.n_steps == pieces.n_steps == 3
    assert torch.equal(whole.params.flat, pieces.params.flat)
    probe = rng.normal(size=(20, 3)).astype(np.float32)
    assert np.array_equal(whole.scores(probe), pieces.scores(probe))


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


def test_stacked_passes_and_adam_steps_are_each_routers_own():
    """`gradients` and `adam_step` over stacked routers (one batch each, outputs padded to the widest) give every
    member what its own flat buffers give: the gradients to float rounding, Adam's arithmetic bit for bit."""
    rng = np.random.default_rng(7)
    shapes, hidden, rows = [(3, 4), (3, 2), (3, 1)], (8, 6), 16
    routers = [in_double(Router(n_in, n_out, hidden=hidden, dropout=0.3, balance_weight=0.5, seed=s, device="cpu"))
               for s, (n_in, n_out) in enumerate(shapes)]
    sizes = [3, *hidden, 4]
    stacked = Layers(sizes, torch.zeros(len(routers), Layers.size_of(sizes), dtype=torch.float64))
    for i, router in enumerate(routers):  # each router's parameters into its row, its outputs first
        for mine, row in zip(tensors(router.params), tensors(stacked)):
            row[i][tuple(slice(0, n) for n in mine.shape)] = mine
    z = torch.from_numpy(rng.normal(size=(len(routers), rows, 3)))
    mask = torch.from_numpy((rng.random((len(routers), rows, 4)) < 0.4).astype(float))
    keep = torch.from_numpy((rng.random((len(routers), rows, sum(hidden))) >= 0.3) / 0.7)
    grads = stacked.zeros_like()
    router_module.gradients(stacked, grads, z, mask, keep, 0.3, 0.5, torch.tensor([n for _, n in shapes]))
    for i, (router, (_, n_out)) in enumerate(zip(routers, shapes)):
        router._gradients(z[i], mask[i, :, :n_out], keep[i])
        for mine, row in zip(tensors(router.grads), tensors(grads)):
            padded = torch.zeros_like(row[i])
            padded[tuple(slice(0, n) for n in mine.shape)] = mine
            torch.testing.assert_close(row[i], padded, rtol=1e-9, atol=1e-12)  # on the padding: exactly zero
    # Adam, float32: members at different steps, one of them flushing its moments
    flat = [torch.from_numpy(rng.normal(size=(3, 50)).astype(np.float32)) for _ in range(3)]
    flat[2] = flat[2].abs()  # second moments
    flat[1][:, :5] = flat[2][:, 5:10] = 1e-35  # moments below TINY
    steps = [1, 16, 37]
    alone = [[t[i].clone() for t in flat] for i in range(3)]
    grad = torch.from_numpy(rng.normal(size=(3, 50)).astype(np.float32))
    grad[:, :10] = 0.0  # parameters without gradient, whose moments only decay
    scalars = np.array([router_module.adam_scalars(k, 0.01) for k in steps], dtype=np.float32)
    router_module.adam_step(flat[0], grad, flat[1], flat[2], torch.from_numpy(scalars[:, :1]),
                            torch.from_numpy(scalars[:, 1:]), torch.tensor([[k % 16 == 0] for k in steps]))
    for i, k in enumerate(steps):
        router_module.adam_step(alone[i][0], grad[i], alone[i][1], alone[i][2], *router_module.adam_scalars(k, 0.01),
                                k % 16 == 0)
        for mine, theirs in zip(alone[i], flat):
            assert torch.equal(mine, theirs[i])
    assert (flat[1][1, :5] == 0).all() and (flat[1][0, :5] != 0).all()  # only the member at step 16 flushed
