"""The routers of many models in one bank: stacked parameters and Adam moments, routed and trained in one batched
call per micro-batch for every member it touches.

A member is a `Router` in all but storage: its parameters, moments and training buffer are one row of the bank's
stacked tensors, while its seed, step counts and dropout generator stay its own, so a bank of M gives the routing
and, after training, the parameters of M separate routers fed the same rows, to float rounding: batched products sum
in another order. Rarely, rounding tips a hidden unit's ReLU (the passes' one discontinuity) on a row, after which
that unit's weights differ by about an Adam step: benchmarks/router_bank.py compares the two after some 600 steps,
under 4e-6 in 11 settings and 0.06 in one, whose first difference above 1e-5 came at step 560, in a first-layer
weight. Members differ in inputs and outputs (features and experts appear per model): the bank pads each to the
widest, and padding stays exactly zero (zero inputs, outputs outside the loss, zero gradients and moments).
"""

from __future__ import annotations

import copy
import dataclasses

import numpy as np
import torch
from torch.nn import functional as F

from stream_moe.devices import resolve_device
from stream_moe.models.router import (
    FLUSH_EVERY, Layers, Router, adam_scalars, adam_step, dropout_kept, forward, fresh_row, gradients, initial_layers,
)

# routing pads a bucket of members to its largest count of rows while the padded rows stay within this share of the
# real ones (see `_buckets`): measured on the CPU against exact groups and one padded bucket (benchmarks/router_bank.py)
ROUTE_PADDING = 0.25
# inputs and outputs are padded to a multiple of this: a member that grows past the bank's widths re-lays every member
# out, which this makes rare (a stream's categories appear one at a time), for at most 7 zero columns or rows each
WIDTH_STEP = 8


class RouterBank:
    """The routers of many models of one shape (`Router`'s parameters, shared by every member), stacked.

    Members are added (`add`, `adopt` a standalone router), taken out (`remove`, `release` as a standalone router,
    `export` a copy) and grown (`grow_inputs`, `add_output`, `reset_output`, `remove_output`) one at a time, the
    others untouched. `scores` routes a micro-batch whose rows carry a member each, `observe` queues training rows,
    and every member that fell due trains in one batched pass: at `train`, or before the next `scores` (or anything
    else that reads a member), in the same host-to-device copy as that call's rows; on CUDA each call copies once
    each way through pinned memory. `member(i)` is a handle with `Router`'s methods for one member.

    Routing lays the rows out member by member and runs one `baddbmm` per layer for each bucket of members with
    similar counts of rows (`_buckets`), over the touched members' parameters gathered into a workspace. Measured on
    the CPU by benchmarks/router_bank.py (hidden (256, 128), 16 inputs and outputs, 1 thread, on a shared 2-core
    machine at load 11-17, where repeats of one computation spread about 30%): a `linear` per layer and member
    (segment-wise, nothing gathered) took 1.2-3.3x as long from 16 members up; one bucket for all (every member
    padded to the largest count: 1024 rows over 1024 members pad up to 6 rows a member) 1.0-1.4x as long from 256
    members, 0.85-1.0x with 16; one product per distinct count measured alike. Buckets keep the products per call
    few, which is what counts on CUDA, where each is a kernel launch. Routing and training together (two runs, load
    11-17), the bank had 1.1-1.9x the throughput of separate routers from 256 members, 1.0-1.6x with 16 and
    0.6-0.8x with one (its bookkeeping for many members): on the CPU it pays where models share it.

    >>> bank = RouterBank(hidden=(8,), batch_size=4, device="cpu")
    >>> a = bank.add(n_inputs=2, n_outputs=3, seed=0)
    >>> b = bank.add(n_inputs=3, n_outputs=2, seed=1)
    >>> z = np.ones((3, 3), dtype=np.float32)
    >>> z[1, 2] = 0.0  # member a has two inputs: its rows' third column is zero
    >>> bank.scores([b, a, b], z).shape  # outputs padded to the bank's width; a member's are its first ones
    (3, 8)
    >>> alone = Router(n_inputs=2, n_outputs=3, hidden=(8,), batch_size=4, seed=0, device="cpu")
    >>> np.allclose(bank.scores([a], z[1:2, :2])[:, :3], alone.scores(z[1:2, :2]))
    True
    """

    def __init__(
        self,
        hidden: tuple[int, ...] = (256, 128),
        dropout: float = 0.2,
        lr: float = 2e-3,
        batch_size: int = 256,
        epochs: int = 1,
        balance_weight: float = 0.0,
        device: str = "auto",
    ):
        self.hidden = tuple(hidden)
        self.dropout = dropout
        self.lr = lr
        self.batch_size = batch_size
        self.epochs = epochs
        self.balance_weight = balance_weight
        self.device_name = device
        self._capacity, self._in_width, self._out_width = 0, WIDTH_STEP, WIDTH_STEP
        self._padding = ROUTE_PADDING
        # per member slot, on the host: whether in use, and each router's own seed, shape and progress
        self._live = np.zeros(0, dtype=bool)
        self._seed, self._n_in, self._n_out, self._fill, self._n_steps, self._adam_steps, self._rows_made = (
            np.zeros(0, dtype=np.int64) for _ in range(7)
        )
        self._rngs: list[np.random.Generator | None] = []
        self._pending: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []  # observed rows not yet buffered
        self._pending_at = np.zeros(0, dtype=bool)
        self._place(*(torch.zeros(0, Layers.size_of(self._sizes)) for _ in range(3)),
                    torch.zeros(0, batch_size, self._in_width), torch.zeros(0, batch_size, self._out_width))

    def _place(self, params, exp_avg, exp_avg_sq, buffer_z, buffer_masks) -> None:
        """Put the stacked tensors on the bank's device."""
        self.device = resolve_device(self.device_name)
        self._params, self._exp_avg, self._exp_avg_sq, self._buffer_z, self._buffer_masks = (
            t.to(self.device) for t in (params, exp_avg, exp_avg_sq, buffer_z, buffer_masks)
        )
        self._work: dict[str, torch.Tensor] = {}
        self._views: dict[tuple[int, int, int], Layers] = {}
        self._transfer = Transfer(self.device)

    @property
    def _sizes(self) -> list[int]:
        return [self._in_width, *self.hidden, self._out_width]

    @property
    def settings(self) -> dict:
        """The router parameters every member shares."""
        return dict(hidden=self.hidden, dropout=self.dropout, lr=self.lr, batch_size=self.batch_size,
                    epochs=self.epochs, balance_weight=self.balance_weight)

    # ---- members ------------------------------------------------------------------------------------------------

    @property
    def members(self) -> np.ndarray:
        """The members' indices (stable while they live; a removed member's index is reused)."""
        return np.flatnonzero(self._live)

    def __len__(self) -> int:
        return int(self._live.sum())

    def n_inputs(self, member: int) -> int:
        return int(self._n_in[self._check(member)])

    def n_outputs(self, member: int) -> int:
        return int(self._n_out[self._check(member)])

    def n_steps(self, member: int) -> int:
        """Training batches the member has learned (as `Router.n_steps`)."""
        m = self._check(member)
        self._flush(m)
        return int(self._n_steps[m])

    def member(self, member: int) -> BankedRouter:
        return BankedRouter(self, self._check(member))

    def add(self, n_inputs: int, n_outputs: int, seed: int = 0) -> int:
        """A new member, initialised as `Router(n_inputs, n_outputs, seed=seed, **settings)`: its index."""
        m = self._slot(n_inputs, n_outputs)
        self._seed[m] = seed
        self._rngs[m] = np.random.default_rng(seed + 1)
        params = initial_layers([n_inputs, *self.hidden, n_outputs], seed)
        self._write(m, params, params.zeros_like(), params.zeros_like())
        return m

    def adopt(self, router: Router) -> int:
        """A standalone router's state, as a new member (it learns on exactly as the router would): its index."""
        if any(getattr(router, k) != v for k, v in self.settings.items()):
            raise ValueError(f"a router of {self._settings_of(router)} cannot join a bank of {self.settings}")
        m = self._slot(router.n_inputs, router.n_outputs)
        self._seed[m], self._n_steps[m], self._adam_steps[m] = router.seed, router.n_steps, router.adam_steps
        self._rows_made[m] = router._n_rows_made
        self._rngs[m] = copy.deepcopy(router._dropout_rng)
        self._write(m, *(Layers(layers.sizes, layers.flat.cpu())
                         for layers in (router.params, router.exp_avg, router.exp_avg_sq)))
        if router._buffered:
            z, masks = np.concatenate(router._z), np.concatenate(router._masks)
            self._fill[m] = len(z)
            self._buffer_z[m, : len(z), : z.shape[1]] = torch.from_numpy(z).to(self.device)
            self._buffer_masks[m, : len(z), : masks.shape[1]] = torch.from_numpy(masks).to(self.device)
        return m

    def export(self, member: int) -> Router:
        """A standalone copy of a member (after its queued rows have trained), e.g. to checkpoint one model alone."""
        state = self.router_state(member)
        state["_dropout_rng"] = copy.deepcopy(state["_dropout_rng"])
        return _standalone(state)

    def router_state(self, member: int) -> dict:
        """A member as a standalone `Router`'s pickled state (after its queued rows have trained): copies, except the
        dropout generator, which is the member's own (pickle the state at once, or copy it). Built directly rather
        than through a `Router`, whose construction draws initial weights only to overwrite them: a checkpoint of
        per-key models holds one of these per member."""
        m = self._check(member)
        self._flush(m)
        n_in, n_out, fill = int(self._n_in[m]), int(self._n_out[m]), int(self._fill[m])
        params = self._read(m)
        return {**self.settings, "device_name": self.device_name, "seed": int(self._seed[m]),
                "n_steps": int(self._n_steps[m]), "adam_steps": int(self._adam_steps[m]),
                "_n_rows_made": int(self._rows_made[m]),
                "_z": [self._buffer_z[m, :fill, :n_in].cpu().numpy().copy()],
                "_masks": [self._buffer_masks[m, :fill, :n_out].cpu().numpy().copy()],
                "_buffered": fill, "_dropout_rng": self._rngs[m],
                "_sizes": params[0].sizes, "_flats": [layers.flat for layers in params]}

    def release(self, member: int) -> Router:
        """Take a member out of the bank as a standalone router."""
        router = self.export(member)
        self.remove(member)
        return router

    def remove(self, member: int) -> None:
        """Forget a member (its queued rows too); its index may be given to a later member. The bank keeps its
        room (as many members as it held at once)."""
        m = self._check(member)
        if self._pending_at[m]:
            self._pending = [(ms[ms != m], z[ms != m], masks[ms != m]) for ms, z, masks in self._pending
                             if (ms != m).any()]
            self._pending_at[m] = False
        self._live[m] = False
        self._rngs[m] = None

    def _check(self, member: int) -> int:
        member = int(member)
        if not (0 <= member < self._capacity and self._live[member]):
            raise KeyError(f"no member {member} in this bank")
        return member

    def _slot(self, n_inputs: int, n_outputs: int) -> int:
        """A free member index for a router of this shape, the bank grown to hold it."""
        if n_outputs < 1:
            raise ValueError("a router needs at least one output")
        free = np.flatnonzero(~self._live)
        capacity = self._capacity if len(free) else max(1, 2 * self._capacity)
        self._resize(capacity, n_inputs, n_outputs)
        m = int(free[0]) if len(free) else int(np.flatnonzero(~self._live)[0])
        self._live[m] = True
        self._n_in[m], self._n_out[m] = n_inputs, n_outputs
        self._fill[m] = self._n_steps[m] = self._adam_steps[m] = self._rows_made[m] = 0
        self._buffer_z[m] = 0.0
        self._buffer_masks[m] = 0.0
        return m

    def _resize(self, capacity: int, n_inputs: int = 0, n_outputs: int = 0) -> None:
        """Make room for `capacity` members with `n_inputs` inputs and `n_outputs` outputs; values kept."""
        in_width = max(self._in_width, -(-n_inputs // WIDTH_STEP) * WIDTH_STEP)
        out_width = max(self._out_width, -(-n_outputs // WIDTH_STEP) * WIDTH_STEP)
        if (capacity, in_width, out_width) == (self._capacity, self._in_width, self._out_width):
            return
        old, before = self._sizes, self._capacity
        self._capacity, self._in_width, self._out_width = capacity, in_width, out_width
        flats = []
        for flat in (self._params, self._exp_avg, self._exp_avg_sq):
            grown = torch.zeros(capacity, Layers.size_of(self._sizes), device=self.device)
            fresh, stale = Layers(self._sizes, grown), Layers(old, flat)
            for i, (weight, bias) in enumerate(zip(stale.weights, stale.biases)):
                fresh.weights[i][:before, : weight.shape[1], : weight.shape[2]] = weight
                fresh.biases[i][:before, : bias.shape[1]] = bias
            flats.append(grown)
        self._params, self._exp_avg, self._exp_avg_sq = flats
        for name, width in (("_buffer_z", in_width), ("_buffer_masks", out_width)):
            stale = getattr(self, name)
            grown = torch.zeros(capacity, self.batch_size, width, device=self.device)
            grown[:before, :, : stale.shape[2]] = stale
            setattr(self, name, grown)
        extra = capacity - before
        self._live = np.pad(self._live, (0, extra))
        self._pending_at = np.pad(self._pending_at, (0, extra))
        for name in ("_seed", "_n_in", "_n_out", "_fill", "_n_steps", "_adam_steps", "_rows_made"):
            setattr(self, name, np.pad(getattr(self, name), (0, extra)))
        self._rngs += [None] * extra
        self._work.clear()
        self._views.clear()

    def _rows(self, member: int) -> tuple[Layers, Layers, Layers]:
        """The member's parameters and moments: views into its row of each stacked tensor, at the bank's widths."""
        return tuple(Layers(self._sizes, flat[member]) for flat in (self._params, self._exp_avg, self._exp_avg_sq))

    def _write(self, member: int, *layers: Layers) -> None:
        """Set a member's parameters and moments from unpadded layers; the padding zero."""
        for row, values in zip(self._rows(member), layers):
            row.flat.zero_()
            for i, (weight, bias) in enumerate(zip(values.weights, values.biases)):
                row.weights[i][: weight.shape[0], : weight.shape[1]] = weight.to(self.device)
                row.biases[i][: bias.shape[0]] = bias.to(self.device)

    def _read(self, member: int) -> list[Layers]:
        """A member's parameters and moments as unpadded layers on the CPU."""
        n_in, n_out = int(self._n_in[member]), int(self._n_out[member])
        sizes = [n_in, *self.hidden, n_out]
        out = []
        for row in self._rows(member):
            weights = [w[:b, :a].cpu() for w, a, b in zip(row.weights, sizes[:-1], sizes[1:])]
            out.append(Layers.of(weights, [bias[:b].cpu() for bias, b in zip(row.biases, sizes[1:])]))
        return out

    # ---- growth, one member at a time ------------------------------------------------------------------------

    def grow_inputs(self, member: int, n_inputs: int) -> None:
        """`Router.grow_inputs` for one member: new columns start at zero (they are already: padding)."""
        m = self._check(member)
        if n_inputs > self._n_in[m]:
            self._resize(self._capacity, n_inputs=n_inputs)
            self._n_in[m] = n_inputs

    def add_output(self, member: int) -> int:
        """`Router.add_output` for one member: a fresh row (the same as a standalone router's), zero bias and
        moments; its queued rows train first, with the outputs they were observed with."""
        m = self._check(member)
        self._flush(m)
        n_out = int(self._n_out[m])
        self._resize(self._capacity, n_outputs=n_out + 1)
        self._rows_made[m] += 1
        row = fresh_row(int(self._seed[m]), n_out + 1000 * int(self._rows_made[m]), self.hidden[-1], n_out)
        # its bias, moments and buffered masks are padding until now: zero
        self._rows(m)[0].weights[-1][n_out] = row[0].to(self.device)
        self._n_out[m] = n_out + 1
        return n_out

    def reset_output(self, member: int, i: int) -> None:
        """`Router.reset_output` for one member: a fresh row, zero bias and moments, its buffered masks cleared."""
        m = self._check(member)
        self._flush(m)
        self._rows_made[m] += 1
        n_out = int(self._n_out[m])
        row = fresh_row(int(self._seed[m]), i + 1000 * int(self._rows_made[m]), self.hidden[-1], n_out)
        for layers in self._rows(m):
            layers.weights[-1][i] = 0.0
            layers.biases[-1][i] = 0.0
        self._rows(m)[0].weights[-1][i] = row[0].to(self.device)
        self._buffer_masks[m, :, i] = 0.0

    def remove_output(self, member: int, i: int) -> None:
        """`Router.remove_output` for one member: the outputs after `i` shift down, the last becomes padding."""
        m = self._check(member)
        self._flush(m)
        n_out = int(self._n_out[m])
        for layers in self._rows(m):
            for t in (layers.weights[-1], layers.biases[-1]):
                t[i : n_out - 1] = t[i + 1 : n_out].clone()
                t[n_out - 1] = 0.0
        masks = self._buffer_masks[m]
        masks[:, i : n_out - 1] = masks[:, i + 1 : n_out].clone()
        masks[:, n_out - 1] = 0.0
        self._n_out[m] = n_out - 1

    # ---- routing and training ---------------------------------------------------------------------------------

    def scores(self, members, z: np.ndarray) -> np.ndarray:
        """Gate logits (rows, the bank's output width) of each row of `z` by its member's router (evaluation mode);
        a member's logits are its first `n_outputs(member)` columns. A row is as wide as its member's inputs or
        narrower (zero-padded), or wider with zeros past them, so that rows of members of several widths stack."""
        members, z = self._rows_of(members, z)
        plan = self._plan()
        if not len(members):
            self._train(plan, self._transfer.to_device(plan.arrays) if plan else [])
            return np.zeros((0, self._out_width), dtype=np.float32)
        touched, buckets, places = self._layout(members)
        arrays = (plan.arrays if plan else []) + [z] + ([] if places is None else [places, touched])
        sent = self._transfer.to_device(arrays)
        with torch.no_grad():
            if places is None:  # one member: its own rows in order, through its row of the parameters
                self._train(plan, sent[:-1])
                return self._transfer.to_host(self._route_one(sent[-1], int(touched[0])))
            self._train(plan, sent[:-3])
            in_place = len(touched) == self._capacity and bool((touched == np.arange(len(touched))).all())
            return self._transfer.to_host(self._route(*sent[-3:], buckets, in_place))

    def _layout(self, members: np.ndarray) -> tuple[np.ndarray, list, np.ndarray | None]:
        """Where each row goes for routing: the touched members (most rows first), their buckets (`_buckets`),
        and each row's place in the padded layout (its bucket, its member's block of the bucket's rows, its rank
        among the member's rows); no places when one member has all the rows."""
        if members[0] == members[-1] and (members == members[0]).all():
            return members[:1], [(0, 1, len(members), 0)], None
        per_member = np.bincount(members, minlength=self._capacity)
        touched = np.flatnonzero(per_member)
        touched = touched[np.argsort(-per_member[touched], kind="stable")]
        buckets = _buckets(per_member[touched], self._padding)
        base = np.zeros(self._capacity, dtype=np.int64)
        for start, end, rows, at in buckets:
            base[touched[start:end]] = at + rows * np.arange(end - start)
        by_member = np.argsort(members, kind="stable")
        rank = np.empty(len(members), dtype=np.int64)
        rank[by_member] = np.arange(len(members)) - (np.cumsum(per_member) - per_member)[members[by_member]]
        return touched, buckets, base[members] + rank

    def _route_one(self, z: torch.Tensor, member: int) -> torch.Tensor:
        """Forward of one member's rows: `Router.scores`' products, on the member's row of the parameters."""
        key = (self._params.data_ptr(), member, None)
        layers = self._views.get(key)
        if layers is None:
            layers = self._views[key] = Layers(self._sizes, self._params[member])
        return forward(layers, F.pad(z, (0, self._in_width - z.shape[1])))

    def observe(self, members, z: np.ndarray, masks: np.ndarray) -> None:
        """Queue training rows (input, multi-hot mask of the member's outputs); every `batch_size` of a member's
        rows, in order, make one training batch, as `Router.observe`. They train at the next `train`, `scores` or
        read of a member."""
        members, z = self._rows_of(members, z)
        masks = np.asarray(masks, dtype=np.float32)
        if len(members) and masks.shape[1] > self._n_out[members].min():
            if ((masks != 0) & (np.arange(masks.shape[1]) >= self._n_out[members][:, None])).any():
                raise ValueError("a mask has more outputs than its member")
        if len(members):
            self._pending.append((members, z.copy(), masks.copy()))
            self._pending_at[members] = True

    def train(self) -> None:
        """Train every member whose queued rows complete a batch: one batched pass per round of steps."""
        plan = self._plan()
        if plan:
            with torch.no_grad():
                self._train(plan, self._transfer.to_device(plan.arrays))

    def _flush(self, member: int | None = None) -> None:
        """Train the queued rows before a member (None: any) is read or changed."""
        if self._pending and (member is None or self._pending_at[member]):
            self.train()

    def _rows_of(self, members, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        members = np.asarray(members, dtype=np.int64).reshape(-1)
        z = np.ascontiguousarray(z, dtype=np.float32)
        if z.ndim != 2 or len(z) != len(members):
            raise ValueError(f"{len(members)} members for rows of shape {z.shape}")
        if len(members) and not (members.min() >= 0 and members.max() < self._capacity and self._live[members].all()):
            raise KeyError(f"rows name members that are not in this bank: {sorted(set(members.tolist()))[:10]}")
        if z.shape[1] > self._in_width or (len(members) and z.shape[1] > self._n_in[members].min()):
            beyond = np.arange(z.shape[1]) >= self._n_in[members][:, None]
            if z.shape[1] > self._in_width or (z[beyond] != 0).any():
                raise ValueError("a row has more inputs than its member")
        return members, z

    def _route(self, z: torch.Tensor, places: torch.Tensor, touched: torch.Tensor, buckets: list,
               in_place: bool) -> torch.Tensor:
        """Forward of the rows laid out by member (`places`), members in `buckets` of similar counts of rows (see
        `_buckets`): one batched product per layer and bucket, over the touched members' parameters gathered
        (`touched`; `in_place`: they are all the members, in order, and need no gathering)."""
        end, rows, at = buckets[-1][1], buckets[-1][2], buckets[-1][3]
        total = at + (end - buckets[-1][0]) * rows
        z = z.new_zeros(total, self._in_width).index_copy_(0, places, F.pad(z, (0, self._in_width - z.shape[1])))
        params = self._params if in_place else torch.index_select(
            self._params, 0, touched, out=self._workspace("route", len(touched)))
        pieces = []
        for start, end, rows, at in buckets:
            h = z[at : at + (end - start) * rows].view(end - start, rows, self._in_width)
            pieces.append(forward(self._layers(params, start, end), h).view(-1, self._out_width))
        return (pieces[0] if len(pieces) == 1 else torch.cat(pieces)).index_select(0, places)

    def _workspace(self, name: str, rows: int) -> torch.Tensor:
        """A reused (rows, member size) buffer: gathering members into a fresh allocation each call costs a page
        fault per 4 KiB on the CPU (at 1024 members the copy took 4x longer)."""
        work = self._work.get(name)
        if work is None or len(work) < rows:
            work = self._work[name] = torch.empty(max(rows, 2 * (0 if work is None else len(work))),
                                                  Layers.size_of(self._sizes), device=self.device)
            self._views.clear()
        return work[:rows]

    def _layers(self, flat: torch.Tensor, start: int, end: int) -> Layers:
        """Layers viewing rows start:end of a stacked tensor (the bank's or a workspace), cached: building the
        views is a dozen tensor calls."""
        key = (flat.data_ptr(), start, end)
        layers = self._views.get(key)
        if layers is None:
            layers = self._views[key] = Layers(self._sizes, flat[start:end])
        return layers

    def _plan(self) -> TrainingPlan | None:
        """Lay the queued rows out for training, on the host: each row's place in its member's buffer, the rounds
        of steps (a member with k full batches takes part in the first k rounds), every step's dropout from the
        member's own generator and Adam scalars for its own step count. Takes the rows off the queue and moves
        the members' counts on: the plan must then run."""
        if not self._pending:
            return None
        members = np.concatenate([ms for ms, _, _ in self._pending])
        z = np.zeros((len(members), self._in_width), dtype=np.float32)
        masks = np.zeros((len(members), self._out_width), dtype=np.float32)
        at = 0
        for ms, zs, ks in self._pending:
            z[at : at + len(ms), : zs.shape[1]] = zs
            masks[at : at + len(ms), : ks.shape[1]] = ks
            at += len(ms)
        self._pending, self._pending_at[:] = [], False
        bs = self.batch_size
        per_member = np.bincount(members, minlength=self._capacity)
        touched = np.flatnonzero(per_member)
        counts = per_member[touched]
        by_member = np.argsort(members, kind="stable")
        rank = np.empty(len(members), dtype=np.int64)  # each row's place among its member's rows here
        rank[by_member] = np.arange(len(members)) - (np.cumsum(per_member) - per_member)[members[by_member]]
        position = self._fill[members] + rank
        rounds = position // bs  # the round before whose step a row goes into its member's buffer
        total = self._fill[touched] + counts
        steps = total // bs
        n_rounds = int(steps.max())
        by_round = np.argsort(rounds, kind="stable")
        row_bounds = np.searchsorted(rounds[by_round], np.arange(n_rounds + 2))
        due = [touched[steps > r] for r in range(n_rounds)]
        due_bounds = np.cumsum([0] + [len(d) for d in due])
        all_due = np.concatenate(due) if due else np.zeros(0, dtype=np.int64)
        width, epochs = sum(self.hidden), self.epochs
        kept = [dropout_kept(self._rngs[m], epochs * bs, width, self.dropout) for m in all_due.tolist()]
        keep = (np.stack(kept).reshape(len(all_due), epochs, bs, width).view(np.uint8) if self.dropout > 0 and
                len(all_due) else np.zeros((len(all_due), epochs, bs, 0), dtype=np.uint8))
        counts_at = np.concatenate([self._adam_steps[d] + r * epochs for r, d in enumerate(due)] or [np.zeros(0)])
        step = counts_at[None, :].astype(np.int64) + np.arange(1, epochs + 1)[:, None]  # (epochs, due steps)
        scalars = np.array([adam_scalars(int(k), self.lr) for k in step.ravel().tolist()], dtype=np.float32)
        scalars = scalars.reshape(epochs, len(all_due), 2).transpose(2, 0, 1)
        flush = step % FLUSH_EVERY == 0
        self._fill[touched] = total % bs
        self._n_steps[touched] += steps
        self._adam_steps[touched] += steps * epochs
        arrays = [(members * bs + position % bs)[by_round], z[by_round], masks[by_round], all_due,
                  self._n_out[all_due], keep, np.ascontiguousarray(scalars), flush]
        rounds = list(zip(due_bounds[:-1].tolist(), due_bounds[1:].tolist()))
        return TrainingPlan(
            arrays, row_bounds.tolist(), due_bounds.tolist(),
            flushes=[[bool(flush[e, a:b].any()) for e in range(epochs)] for a, b in rounds],
            in_place=[b - a == self._capacity and bool((all_due[a:b] == np.arange(b - a)).all()) for a, b in rounds],
            padded=[bool((self._n_out[all_due[a:b]] < self._out_width).any()) for a, b in rounds],
        )

    def _train(self, plan: TrainingPlan | None, sent: list[torch.Tensor]) -> None:
        """Run a plan on the device: buffer each round's rows, then one batched step (per epoch) of that round's
        members, gathered into workspaces and written back."""
        if plan is None:
            return
        places, z, masks, due, n_out, keep, scalars, flush = sent  # places: member * batch_size + row in batch
        rows = plan.row_bounds
        buffer_z, buffer_masks = (t.view(-1, t.shape[2]) for t in (self._buffer_z, self._buffer_masks))
        for r in range(len(plan.due_bounds)):
            if rows[r + 1] > rows[r]:
                part = slice(rows[r], rows[r + 1])
                buffer_z.index_copy_(0, places[part], z[part])
                buffer_masks.index_copy_(0, places[part], masks[part])
            if r == len(plan.due_bounds) - 1:
                break
            a, b = plan.due_bounds[r], plan.due_bounds[r + 1]
            ms = due[a:b]
            stacked = (self._params, self._exp_avg, self._exp_avg_sq)
            if plan.in_place[r]:  # every member, in order: no gathering
                work, zs, ks = list(stacked), self._buffer_z, self._buffer_masks
            else:
                work = [torch.index_select(flat, 0, ms, out=self._workspace(name, b - a))
                        for name, flat in zip(("params", "exp_avg", "exp_avg_sq"), stacked)]
                zs, ks = self._buffer_z.index_select(0, ms), self._buffer_masks.index_select(0, ms)
            grads = self._workspace("grads", b - a)
            params, grad_layers = self._layers(work[0], 0, b - a), self._layers(grads, 0, b - a)
            scale = None if self.dropout <= 0 else keep[a:b].to(zs.dtype).mul_(1.0 / (1.0 - self.dropout))
            for e in range(self.epochs):
                gradients(params, grad_layers, zs, ks, None if scale is None else scale[:, e], self.dropout,
                          self.balance_weight, n_out[a:b] if plan.padded[r] else None)
                adam_step(work[0], grads, work[1], work[2], scalars[0, e, a:b, None], scalars[1, e, a:b, None],
                          flush[e, a:b, None] if plan.flushes[r][e] else False)
            if not plan.in_place[r]:
                for flat, values in zip(stacked, work):
                    flat.index_copy_(0, ms, values)

    # ---- pickling: tensors travel as CPU state, so a bank restores on any device -----------------------------

    def __getstate__(self):
        state = {k: v for k, v in self.__dict__.items()
                 if k not in ("_params", "_exp_avg", "_exp_avg_sq", "_buffer_z", "_buffer_masks", "device", "_work",
                              "_views", "_transfer")}
        state["_tensors"] = [t.cpu() for t in (self._params, self._exp_avg, self._exp_avg_sq, self._buffer_z,
                                               self._buffer_masks)]
        return state

    def __setstate__(self, state):
        tensors = state.pop("_tensors")
        self.__dict__.update(state)
        self._place(*tensors)

    @staticmethod
    def _settings_of(router: Router) -> dict:
        return {k: getattr(router, k) for k in ("hidden", "dropout", "lr", "batch_size", "epochs", "balance_weight")}


def _buckets(counts: np.ndarray, padding: float) -> list[tuple[int, int, int, int]]:
    """Members (their counts of rows, most first) in buckets of consecutive members, each padded to its largest
    count, as few as keep the padded rows of each within `padding` times its real rows: (first member, end, rows
    per member, first padded row) each. Exact groups (`padding=0`) cost a product per distinct count; one bucket can
    multiply the rows (1024 rows over 1024 members: up to 6 a member)."""
    distinct, first = np.unique(-counts, return_index=True)  # counts descending
    ends = [*first[1:].tolist(), len(counts)]
    buckets, at, i = [], 0, 0
    while i < len(first):
        start, rows, real, j = int(first[i]), int(-distinct[i]), 0, i
        while j < len(first) and (ends[j] - start) * rows <= (1 + padding) * (real + (ends[j] - first[j]) *
                                                                                -distinct[j]):
            real += (ends[j] - first[j]) * -distinct[j]
            j += 1
        buckets.append((start, ends[j - 1], rows, at))
        at += (ends[j - 1] - start) * rows
        i = j
    return buckets


@dataclasses.dataclass
class TrainingPlan:
    """Queued rows laid out for one training pass (see `RouterBank._plan`): the arrays to copy to the device, where
    each round's rows and members start, and per round whether any member's moments flush at an epoch, whether its
    members are all the bank's in order (trained in place), and whether any has padded outputs."""

    arrays: list[np.ndarray]
    row_bounds: list[int]
    due_bounds: list[int]
    flushes: list[list[bool]]
    in_place: list[bool]
    padded: list[bool]


class BankedRouter:
    """One member of a `RouterBank` behind `Router`'s methods, so that a model routes through a bank unchanged.

    `observe` queues the rows (the bank trains them before anything next reads the member). A handle pickles (and
    copies) as a standalone `Router`: a model's checkpoint holds its own router, never the bank."""

    def __init__(self, bank: RouterBank, member: int):
        self.bank, self.index = bank, member

    @property
    def n_inputs(self) -> int:
        return self.bank.n_inputs(self.index)

    @property
    def n_outputs(self) -> int:
        return self.bank.n_outputs(self.index)

    @property
    def n_steps(self) -> int:
        return self.bank.n_steps(self.index)

    def scores(self, z: np.ndarray) -> np.ndarray:
        return self.bank.scores(np.full(len(z), self.index), z)[:, : self.n_outputs]

    def observe(self, z: np.ndarray, mask: np.ndarray) -> bool:
        """Queue training rows; returns False (whether a step runs is known when the bank trains)."""
        self.bank.observe(np.full(len(z), self.index), z, mask)
        return False

    def grow_inputs(self, n_inputs: int) -> None:
        self.bank.grow_inputs(self.index, n_inputs)

    def add_output(self) -> int:
        return self.bank.add_output(self.index)

    def reset_output(self, i: int) -> None:
        self.bank.reset_output(self.index, i)

    def remove_output(self, i: int) -> None:
        self.bank.remove_output(self.index, i)

    def __reduce__(self):
        return _standalone, (self.bank.router_state(self.index),)


def _standalone(state: dict) -> Router:
    """A pickled `BankedRouter` comes back as the standalone `Router` of this state."""
    router = Router.__new__(Router)
    router.__setstate__(state)
    return router


class Transfer:
    """Host arrays to the device and results back, each way in one copy: on CUDA the arrays are packed into one
    pinned buffer (at 16-byte offsets) and sent with one `copy_`, then viewed apart on the device; on the CPU they
    are only wrapped. `pack=True` packs on the CPU too (to test the packing)."""

    ALIGN = 16

    def __init__(self, device: torch.device, pack: bool | None = None):
        self.device = device
        self.pack = device.type == "cuda" if pack is None else pack
        self._pinned = device.type == "cuda"
        self._up: torch.Tensor | None = None
        self._down: torch.Tensor | None = None
        self._sent: torch.cuda.Event | None = None

    def _buffer(self, current: torch.Tensor | None, n: int) -> torch.Tensor:
        if current is None or len(current) < n:
            current = torch.empty(max(n, 2 * (0 if current is None else len(current))), dtype=torch.uint8,
                                  pin_memory=self._pinned)
        return current

    def to_device(self, arrays: list[np.ndarray]) -> list[torch.Tensor]:
        arrays = [np.ascontiguousarray(a) for a in arrays]
        if not self.pack:
            return [torch.from_numpy(a) for a in arrays]
        starts, at = [], 0
        for a in arrays:
            starts.append(at)
            at += -(-a.nbytes // self.ALIGN) * self.ALIGN
        if self._sent is not None:
            self._sent.synchronize()  # the previous copy has left the pinned buffer
        self._up = self._buffer(self._up, at)
        host = self._up.numpy()
        for a, start in zip(arrays, starts):
            host[start : start + a.nbytes] = a.reshape(-1).view(np.uint8)
        sent = torch.empty(at, dtype=torch.uint8, device=self.device)
        sent.copy_(self._up[:at], non_blocking=self._pinned)
        if self._pinned:
            self._sent = torch.cuda.Event()
            self._sent.record()
        return [sent[start : start + a.nbytes].view(_TORCH_DTYPES[a.dtype]).view(a.shape)
                for a, start in zip(arrays, starts)]

    def to_host(self, t: torch.Tensor) -> np.ndarray:
        if not self.pack and t.device.type == "cpu":
            return t.numpy()
        flat = t.reshape(-1).view(torch.uint8)
        self._down = self._buffer(self._down, len(flat))
        self._down[: len(flat)].copy_(flat, non_blocking=self._pinned)
        if self._pinned:
            torch.cuda.current_stream(self.device).synchronize()
        return self._down[: len(flat)].numpy().view(_NUMPY_DTYPES[t.dtype]).reshape(t.shape).copy()


_TORCH_DTYPES = {np.dtype(np.float32): torch.float32, np.dtype(np.int64): torch.int64,
                 np.dtype(np.uint8): torch.uint8, np.dtype(np.bool_): torch.bool}
_NUMPY_DTYPES = {v: k for k, v in _TORCH_DTYPES.items()}


def route(routings: list) -> list[np.ndarray | None]:
    """The logits of each `Routing` (`Mixture.start_batch`'s): the rows of all those whose routers are members of
    one bank go through it in one `scores` call, the others through their own routers."""
    logits: list[np.ndarray | None] = [None] * len(routings)
    banks: dict[int, tuple[RouterBank, list[int]]] = {}
    for i, routing in enumerate(routings):
        if routing.z is not None and isinstance(routing.router, BankedRouter):
            banks.setdefault(id(routing.router.bank), (routing.router.bank, []))[1].append(i)
        else:
            logits[i] = routing.route()
    for bank, which in banks.values():
        sizes = [len(routings[i].z) for i in which]
        z = np.zeros((sum(sizes), max(routings[i].z.shape[1] for i in which)), dtype=np.float32)
        at = 0
        for i, n in zip(which, sizes):
            z[at : at + n, : routings[i].z.shape[1]] = routings[i].z
            at += n
        scores = bank.scores(np.repeat([routings[i].router.index for i in which], sizes), z)
        for i, part in zip(which, np.split(scores, np.cumsum(sizes)[:-1])):
            logits[i] = part
    return logits


def predict_learn_together(models: list, batches: list[tuple[list, list]]) -> list[list[tuple[dict, list[int]]]]:
    """`model.predict_learn_many(xs, ys)` for each model and its batch, with the same results, the routers of
    models that share a bank routed in one call per bank (their training rows queue, to train in one pass at the
    bank's next call). Each model at most once.

    >>> from stream_moe.models.driftmoe_data import DriftMoEData
    >>> models = [DriftMoEData(n_experts=4, hidden=(16,), experts="river", device="cpu", seed=s) for s in range(3)]
    >>> bank = RouterBank(device="cpu", **models[0].router_settings)
    >>> for model in models:
    ...     model.use_router_bank(bank)
    >>> batches = [([{"x": float(i + s)} for i in range(8)], [i % 2 for i in range(8)]) for s in range(3)]
    >>> answers = predict_learn_together(models, batches)  # the three routers in one call to the bank
    >>> len(bank), [len(a) for a in answers], type(models[0].router_).__name__
    (3, [8, 8, 8], 'BankedRouter')
    """
    if len({id(m) for m in models}) != len(models):
        raise ValueError("a model appears twice: its second batch would be routed before its first is learned")
    routings = [model.start_batch(xs, ys) for model, (xs, ys) in zip(models, batches)]
    return [model.finish_batch(r, logits) for model, r, logits in zip(models, routings, route(routings))]


def predict_together(models: list, xss: list[list]) -> list[list[tuple[dict, list[int]]]]:
    """`model.predict_detail_many(xs)` for each model and its rows, routed as in `predict_learn_together`."""
    routings = [model.start_batch(xs) for model, xs in zip(models, xss)]
    return [model.finish_batch(r, logits) for model, r, logits in zip(models, routings, route(routings))]
