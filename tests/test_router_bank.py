"""A router bank routes and trains as the separate routers it stacks, through growth, dropout and members coming and
going; DriftMoE models sharing one bank predict as with their own routers."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from river.datasets import synth

from regimes import regimes
from stream_moe.models import router as router_module
from stream_moe.models.driftmoe_data import DriftMoEData
from stream_moe.models.driftmoe_task import DriftMoETask
from stream_moe.models.router import Router
from stream_moe.models.router_bank import (
    WIDTH_STEP, BankedRouter, RouterBank, Transfer, predict_learn_together, predict_together,
)

SETTINGS = dict(hidden=(16, 8), dropout=0.2, lr=0.01, batch_size=8, epochs=1, balance_weight=0.05)


class Twins:
    """A bank and the standalone routers it must equal, fed the same rows: member i is routers[i]."""

    def __init__(self, settings: dict, rng: np.random.Generator):
        self.settings, self.rng = settings, rng
        self.bank = RouterBank(device="cpu", **settings)
        self.routers: dict[int, Router] = {}

    def add(self, n_inputs: int, n_outputs: int, seed: int) -> int:
        member = self.bank.add(n_inputs, n_outputs, seed=seed)
        self.routers[member] = Router(n_inputs, n_outputs, seed=seed, device="cpu", **self.settings)
        return member

    def micro_batch(self, n: int, members: list[int] | None = None) -> None:
        """n rows spread over the members (or these), routed by both, then observed by both."""
        pool = list(self.routers) if members is None else members
        members = np.asarray(pool)[self.rng.integers(0, len(pool), n)]
        width = max(r.n_inputs for r in self.routers.values())
        z = np.zeros((n, width), dtype=np.float32)
        masks = np.zeros((n, max(r.n_outputs for r in self.routers.values())), dtype=np.float32)
        for i, m in enumerate(members):
            router = self.routers[m]
            z[i, : router.n_inputs] = self.rng.normal(size=router.n_inputs)
            masks[i, : router.n_outputs] = self.rng.random(router.n_outputs) < 0.4
        scores = self.bank.scores(members, z)
        for m, router in self.routers.items():
            rows = members == m
            if rows.any():
                theirs = router.scores(z[rows, : router.n_inputs])
                np.testing.assert_allclose(scores[rows, : router.n_outputs], theirs, rtol=1e-4, atol=1e-5)
        self.bank.observe(members, z, masks)
        for m, router in self.routers.items():
            rows = members == m
            if rows.any():
                router.observe(z[rows, : router.n_inputs], masks[rows, : router.n_outputs])

    def grow(self, member: int, how: str, *args) -> None:
        getattr(self.routers[member], how)(*args)
        getattr(self.bank, how)(member, *args)

    def assert_equal(self) -> None:
        for m, router in self.routers.items():
            assert_same_router(self.bank.export(m), router)


def assert_same_router(ours: Router, theirs: Router, exact: bool = False) -> None:
    """The same progress, parameters and Adam moments (to float rounding, or bit for bit), the same training
    buffer, and the same dropout generator state."""
    assert (ours.n_inputs, ours.n_outputs) == (theirs.n_inputs, theirs.n_outputs)
    assert (ours.n_steps, ours.adam_steps, ours._n_rows_made, ours._buffered) == (
        theirs.n_steps, theirs.adam_steps, theirs._n_rows_made, theirs._buffered)
    assert ours._dropout_rng.bit_generator.state == theirs._dropout_rng.bit_generator.state
    for name in ("params", "exp_avg", "exp_avg_sq"):
        a, b = getattr(ours, name).flat, getattr(theirs, name).flat
        if exact:
            assert torch.equal(a, b), name
        else:
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6 if name == "params" else 1e-9)
    for mine, other in ((ours._z, theirs._z), (ours._masks, theirs._masks)):
        assert np.array_equal(*(np.concatenate(x).ravel() if x else np.zeros(0) for x in (mine, other)))


@pytest.mark.parametrize("dropout, balance, epochs", [(0.2, 0.05, 1), (0.0, 0.0, 2), (0.5, 1.0, 3)])
def test_a_bank_routes_and_trains_as_separate_routers_through_growth(dropout, balance, epochs):
    twins = Twins({**SETTINGS, "dropout": dropout, "balance_weight": balance, "epochs": epochs},
                  np.random.default_rng(0))
    shapes = [(3, 4), (5, 2), (2, 1), (7, 9), (1, 3)]  # one output: no balance term for that member
    members = [twins.add(n_in, n_out, seed=s) for s, (n_in, n_out) in enumerate(shapes)]
    events = {
        3: ("add_output", members[0]), 5: ("grow_inputs", members[1], 6), 7: ("reset_output", members[3], 2),
        9: ("remove_output", members[3], 0), 11: ("add_output", members[2]),
        13: ("grow_inputs", members[4], WIDTH_STEP + 3),  # past the bank's input width: every member re-laid out
        15: ("remove_output", members[0], 4), 17: ("reset_output", members[1], 0),
    }
    for round_ in range(24):
        # from 1 row (most members absent) to 3 batches' worth per member in one micro-batch
        twins.micro_batch([1, 5, 17, 40, 120][round_ % 5])
        if round_ in events:
            how, member, *args = events[round_]
            twins.grow(member, how, *args)
    assert min(r.n_steps for r in twins.routers.values()) >= 10
    twins.assert_equal()


def test_growing_one_member_leaves_the_others_bit_identical():
    twins = Twins(SETTINGS, np.random.default_rng(1))
    members = [twins.add(3, 4, seed=s) for s in range(3)]
    for _ in range(6):
        twins.micro_batch(30)
    for how, *args in [("add_output",), ("reset_output", 1), ("remove_output", 0), ("grow_inputs", 4),
                       ("grow_inputs", 3 * WIDTH_STEP), ("add_output",)]:
        before = [twins.bank.export(m) for m in members[1:]]
        twins.grow(members[0], how, *args)
        for m, old in zip(members[1:], before):
            assert_same_router(twins.bank.export(m), old, exact=True)
    for _ in range(40):  # enough rows to train again with the new widths
        twins.micro_batch(30)
    twins.assert_equal()


def test_members_come_and_go():
    twins = Twins(SETTINGS, np.random.default_rng(2))
    first = [twins.add(2, 3, seed=s) for s in range(3)]
    twins.micro_batch(20)
    twins.bank.observe([first[1]] * 3, np.ones((3, 2), dtype=np.float32), np.ones((3, 3), dtype=np.float32))
    twins.bank.remove(first[1])  # its queued rows go with it
    del twins.routers[first[1]]
    assert len(twins.bank) == 2 and first[1] not in twins.bank.members
    later = twins.add(4, 2, seed=7)  # reuses the free index, with nothing of the member that held it
    assert later == first[1]
    with pytest.raises(KeyError):
        twins.bank.scores([99], np.zeros((1, 2), dtype=np.float32))
    for _ in range(12):
        twins.micro_batch(25)
    more = [twins.add(3, 2, seed=10 + s) for s in range(5)]  # the bank doubles its room
    for _ in range(12):
        twins.micro_batch(25, members=more + [later])
        twins.micro_batch(7)
    twins.assert_equal()


def test_every_member_that_fell_due_trains_in_one_batched_pass(monkeypatch):
    bank = RouterBank(device="cpu", **SETTINGS)
    members = [bank.add(3, 2, seed=s) for s in range(50)]
    passes = []
    gradients = router_module.gradients
    monkeypatch.setattr("stream_moe.models.router_bank.gradients",
                        lambda params, grads, z, *args: passes.append(z.shape) or gradients(params, grads, z, *args))
    rows = np.repeat(members, SETTINGS["batch_size"] * 2)  # two batches each: two rounds of 50 steps
    bank.observe(rows, np.ones((len(rows), 3), dtype=np.float32), np.ones((len(rows), 2), dtype=np.float32))
    bank.train()
    assert passes == [(50, SETTINGS["batch_size"], WIDTH_STEP)] * 2
    assert {bank.n_steps(m) for m in members} == {2}


def test_a_member_leaves_as_a_router_and_a_router_joins_and_both_learn_on_identically():
    rng = np.random.default_rng(3)
    twins = Twins(SETTINGS, rng)
    members = [twins.add(3, 3, seed=s) for s in range(3)]
    for _ in range(5):
        twins.micro_batch(21)
    # a member taken out (as a key's model is spilled to a checkpoint) and brought back later
    spilled = pickle.loads(pickle.dumps(twins.bank.release(members[0])))
    assert_same_router(spilled, twins.routers[members[0]], exact=False)
    back = twins.bank.adopt(spilled)
    assert_same_router(twins.bank.export(back), spilled, exact=True)
    twins.routers[back] = twins.routers.pop(members[0])
    for _ in range(8):
        twins.micro_batch(21)
    twins.assert_equal()
    # the bank itself pickles, queued rows included, and continues bit for bit
    twins.bank.observe(members[1:], np.ones((2, 3), dtype=np.float32), np.ones((2, 3), dtype=np.float32))
    copy = pickle.loads(pickle.dumps(twins.bank))
    z = rng.normal(size=(40, 3)).astype(np.float32)
    rows = rng.choice(copy.members, 40)
    for bank in (twins.bank, copy):
        bank.observe(rows, z, np.ones((40, 3), dtype=np.float32))
    assert np.array_equal(copy.scores(rows, z), twins.bank.scores(rows, z))
    for m in copy.members:
        assert_same_router(copy.export(m), twins.bank.export(m), exact=True)
    with pytest.raises(ValueError):
        twins.bank.adopt(Router(3, 3, **{**SETTINGS, "lr": 0.5}))


def test_transfers_pack_every_array_into_one_copy_each_way():
    transfer = Transfer(torch.device("cpu"), pack=True)
    arrays = [np.arange(5, dtype=np.int64), np.ones((3, 7), dtype=np.float32), np.array([True, False, True]),
              np.zeros((0, 4), dtype=np.float32), np.arange(11, dtype=np.uint8).reshape(1, 11)]
    sent = transfer.to_device(arrays)
    for a, t in zip(arrays, sent):
        assert t.shape == a.shape and np.array_equal(t.numpy(), a)
    assert len({t.untyped_storage().data_ptr() for t in sent if t.numel()}) == 1  # views of one buffer
    logits = torch.randn(4, 8)
    assert np.array_equal(transfer.to_host(logits), logits.numpy())
    # a bank whose transfers are packed (as on CUDA) computes exactly what an unpacked one does
    banks = [RouterBank(device="cpu", **SETTINGS) for _ in range(2)]
    banks[1]._transfer = Transfer(banks[1].device, pack=True)
    rng = np.random.default_rng(4)
    for bank in banks:
        for s in range(4):
            bank.add(3, 2, seed=s)
    for _ in range(10):
        rows, z = rng.integers(0, 4, 30), rng.normal(size=(30, 3)).astype(np.float32)
        masks = (rng.random((30, 2)) < 0.5).astype(np.float32)
        got = [bank.scores(rows, z) for bank in banks]
        assert np.array_equal(*got)
        for bank in banks:
            bank.observe(rows, z, masks)
    assert torch.equal(banks[0]._params, banks[1]._params)


def test_rows_must_fit_their_members():
    bank = RouterBank(device="cpu", **SETTINGS)
    a, b = bank.add(2, 2), bank.add(4, 3)
    z = np.ones((2, 4), dtype=np.float32)
    with pytest.raises(ValueError, match="more inputs"):
        bank.scores([a, b], z)  # a's row has values past a's two inputs
    z[0, 2:] = 0.0
    assert bank.scores([a, b], z).shape == (2, WIDTH_STEP)
    with pytest.raises(ValueError, match="more outputs"):
        bank.observe([a], z[:1], np.ones((1, 3), dtype=np.float32))


# ---- DriftMoE models sharing a bank ------------------------------------------------------------------------------


def drifting_streams(n: int) -> list[list]:
    """Three streams that drift differently: SEA's labels flip (drifts replace experts); LED's classes 4-9 first
    appear a third of the way in (a new output each); input regimes come and go (expansions and prunes)."""
    sea = [(x, y if i < n // 3 else not y) for i, (x, y) in enumerate(synth.SEA(seed=1, noise=0.05).take(n))]
    led = [(x, y) for x, y in synth.LEDDrift(seed=2, noise_percentage=0.1, n_drift_features=4).take(2 * n)]
    led = [xy for xy in led if xy[1] < 4][: n // 3] + [xy for xy in led if xy[1] >= 4][: n - n // 3]
    return [sea, led, regimes([0, 1, 2, 3, 0], n // 5, seed=3)]


def models(**router):
    return [
        DriftMoEData(n_experts=4, top_k=2, seed=1, **router),
        DriftMoETask(seed=2, balance_weight=0.01, **router),
        DriftMoEData(n_experts=2, top_k=1, expansion=True, max_experts=3, novelty_window=100,
                     expansion_cooldown=200, drift_detector=None, seed=3, **router),
    ]


def assert_same_details(ours: list, theirs: list) -> None:
    """Per model and row: the same experts, the same classes, probabilities equal to float rounding."""
    for mine, other in zip(ours, theirs, strict=True):
        assert [e for _, e in mine] == [e for _, e in other]
        for (p, _), (q, _) in zip(mine, other, strict=True):
            assert list(p) == list(q) and np.allclose(list(p.values()), list(q.values()), rtol=1e-5, atol=1e-6)


def test_driftmoe_models_sharing_a_bank_predict_as_with_their_own_routers():
    n, batch = 1500, 25
    streams = drifting_streams(n)
    router = dict(hidden=(16, 8), device="cpu")
    alone, banked = models(**router), models(**router)
    bank = RouterBank(device="cpu", **banked[0].router_settings)
    for model in banked:
        model.use_router_bank(bank)
    for start in range(0, n, batch):
        batches = [([x for x, _ in s[start : start + batch]], [y for _, y in s[start : start + batch]])
                   for s in streams]
        if start == n // 2:  # one model spills (pickled with its router alone) and comes back into the bank
            assert isinstance(banked[2].router_, BankedRouter)
            spilled = pickle.dumps(banked[2])
            assert b"RouterBank" not in spilled and b"BankedRouter" not in spilled
            bank.remove(banked[2].router_.index)
            banked[2] = pickle.loads(spilled)
            assert type(banked[2].router_) is Router
            banked[2].use_router_bank(bank)
        theirs = [model.predict_learn_many(xs, ys) for model, (xs, ys) in zip(alone, batches)]
        assert_same_details(predict_learn_together(banked, batches), theirs)
        probe = [xs[:5] for xs, _ in batches]
        assert_same_details(predict_together(banked, probe),
                            [model.predict_detail_many(xs) for model, xs in zip(alone, probe)])
    assert banked[2].counts_["expansions"] >= 2 and banked[2].counts_["prunes"] >= 1
    assert banked[0].counts_["drifts"] >= 1 and banked[1].router_.n_outputs == len(banked[1].classes_) >= 6
    for model, other in zip(banked, alone):
        assert_same_router(pickle.loads(pickle.dumps(model.router_)), other.router_)
        model.use_router_bank(None)
        assert type(model.router_) is Router
    assert len(bank) == 0


def test_removing_the_members_with_queued_rows_leaves_nothing_to_train():
    bank = RouterBank(hidden=(8,), batch_size=4, device="cpu")
    a, b = bank.add(2, 2, seed=0), bank.add(2, 2, seed=1)
    bank.observe([a, a], np.ones((2, 2), dtype=np.float32), np.ones((2, 2), dtype=np.float32))
    bank.remove(a)
    assert bank.scores([b], np.ones((1, 2), dtype=np.float32)).shape[0] == 1
