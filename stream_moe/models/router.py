"""The gating network of a mixture of experts: a torch MLP trained on micro-batches of correctness masks.

`Router` owns device placement, the optimizer, the training buffer, and growth: new input columns (new features or
categories) and new outputs (new experts) are added with the old weights, and their Adam moments, kept exactly.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from stream_moe.devices import resolve_device

BETAS, EPS = (0.9, 0.999), 1e-8  # Adam's, torch's defaults
# Adam moments below TINY are zeroed every FLUSH_EVERY steps, before they decay into denormal floats: a parameter whose
# gradient stays zero (a dead ReLU unit's) has its first moment shrink 0.9x a step and stick at the smallest denormal,
# where every operation is about 100x slower (SEA_a, 12 experts of which 3 learn: 11,000-20,000 of the 35,000 moments
# denormal from 60,000 instances on, an Adam step 550 us instead of 90). A moment of 1e-30 moves no float32 parameter.
TINY, FLUSH_EVERY = 1e-30, 16


class Layers:
    """An MLP's weight matrices (out, in) and bias vectors as views into one flat tensor: what the router keeps for
    its parameters, their gradients and each Adam moment, so that an Adam step over all of them is a handful of
    kernels. A stacked flat tensor (M, size) holds M such MLPs, one a row, with views (M, out, in) and (M, out): a
    router bank's.

    >>> layers = Layers.of([torch.ones(3, 2), torch.ones(1, 3)], [torch.zeros(3), torch.zeros(1)])
    >>> layers.sizes, layers.flat.shape, layers.weights[1].shape
    ([2, 3, 1], torch.Size([13]), torch.Size([1, 3]))
    >>> Layers([2, 3, 1], torch.zeros(5, 13)).weights[0].shape
    torch.Size([5, 3, 2])
    """

    def __init__(self, sizes: list[int], flat: torch.Tensor):
        self.sizes, self.flat = list(sizes), flat
        self.weights: list[torch.Tensor] = []
        self.biases: list[torch.Tensor] = []
        lead, at = flat.shape[:-1], 0
        for a, b in zip(self.sizes[:-1], self.sizes[1:]):
            self.weights.append(flat[..., at : at + a * b].view(*lead, b, a))
            self.biases.append(flat[..., at + a * b : at + a * b + b])
            at += a * b + b
        if at != flat.shape[-1]:
            raise ValueError(f"{flat.shape[-1]} values do not make layers of sizes {self.sizes}")

    @staticmethod
    def size_of(sizes: list[int]) -> int:
        """How many values layers of these sizes hold."""
        return sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:]))

    @classmethod
    def of(cls, weights: list[torch.Tensor], biases: list[torch.Tensor]) -> Layers:
        """Layers holding copies of these weights and biases."""
        sizes = [weights[0].shape[1]] + [w.shape[0] for w in weights]
        return cls(sizes, torch.cat([t.reshape(-1) for pair in zip(weights, biases) for t in pair]))

    def zeros_like(self) -> Layers:
        return Layers(self.sizes, torch.zeros_like(self.flat))

    def edited(self, i: int, weight=None, bias=None) -> Layers:
        """Layers with layer i's weight replaced by `weight(it)` and its bias by `bias(it)` (either may change
        shape; None keeps it), the others copied."""
        weights, biases = list(self.weights), list(self.biases)
        if weight is not None:
            weights[i] = weight(weights[i])
        if bias is not None:
            biases[i] = bias(biases[i])
        return Layers.of(weights, biases)


def initial_layers(sizes: list[int], seed: int) -> Layers:
    """Xavier-uniform weights drawn in layer order from a generator seeded by `seed`, zero biases: a new router's."""
    gen = torch.Generator().manual_seed(seed)
    weights = [nn.init.xavier_uniform_(torch.empty(b, a), generator=gen) for a, b in zip(sizes[:-1], sizes[1:])]
    return Layers.of(weights, [torch.zeros(b) for b in sizes[1:]])


def fresh_row(seed: int, tag: int, n_in: int, n_out: int) -> torch.Tensor:
    """A Xavier-uniform output row (1, n_in) for a layer of `n_out` outputs, from a generator seeded by the router's
    seed and `tag` (reproducible)."""
    gen = torch.Generator().manual_seed(int(seed + 7919 * tag))
    bound = float(np.sqrt(6.0 / (n_in + n_out)))
    return (torch.rand(1, n_in, generator=gen) * 2 - 1) * bound


def dropout_kept(rng: np.random.Generator, rows: int, width: int, dropout: float) -> np.ndarray | None:
    """Which hidden units dropout keeps, (rows, width) booleans, from the router's own generator: numpy's, twice as
    fast as torch's on the CPU, and the same on every device. None without dropout."""
    if dropout <= 0:
        return None
    return rng.random((rows, width), dtype=np.float32) >= dropout


def adam_scalars(steps: int, lr: float) -> tuple[float, float]:
    """Adam's bias corrections for step number `steps`, folded into its eps and its step size: torch's step
    lr / c1 * m / (sqrt(v) / c2 + eps) is lr * c2 / c1 * m / (sqrt(v) + eps * c2), a pass fewer.

    >>> eps, size = adam_scalars(1, 1e-3)  # the first step: lr * sqrt(1 - 0.999) / (1 - 0.9)
    >>> round(size, 7), round(eps / 1e-8, 4)
    (-0.0003162, 0.0316)
    """
    (beta1, beta2) = BETAS
    c1, c2 = 1 - beta1**steps, math.sqrt(1 - beta2**steps)
    return EPS * c2, -lr * c2 / c1


def adam_step(params: torch.Tensor, grads: torch.Tensor, exp_avg: torch.Tensor, exp_avg_sq: torch.Tensor, eps,
              size, flush) -> None:
    """One step of Adam (Kingma & Ba, as `torch.optim.Adam` takes it) on flat buffers, with `eps` and `size` from
    `adam_scalars`: one router's buffers (P,) with floats, or stacked routers' (D, P) with (D, 1) tensors, each router
    at its own step. `flush` (a bool, or (D, 1) bools) zeroes the moments below `TINY`, to keep them out of the
    denormal range; the same float32 arithmetic either way."""
    (beta1, beta2), g = BETAS, grads
    exp_avg.lerp_(g, 1 - beta1)
    exp_avg_sq.mul_(beta2).addcmul_(g, g, value=1 - beta2)
    denom = exp_avg_sq.sqrt().add_(eps)
    if isinstance(size, torch.Tensor):
        params.addcdiv_(exp_avg.mul(size), denom)  # (m * size) / denom: addcdiv's (value * m) / denom with a tensor
    else:
        params.addcdiv_(exp_avg, denom, value=size)
    if flush is True or isinstance(flush, torch.Tensor):
        for moment in (exp_avg, exp_avg_sq):
            tiny = moment.abs() < TINY
            moment.masked_fill_(tiny if flush is True else tiny.logical_and_(flush), 0.0)


def _linear(h: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """h @ weight.T + bias, for one router (rows, in) or stacked routers (D, rows, in)."""
    if h.dim() == 2:
        return F.linear(h, weight, bias)
    return torch.baddbmm(bias.unsqueeze(1), h, weight.transpose(1, 2))


def forward(params: Layers, z: torch.Tensor) -> torch.Tensor:
    """Gate logits in evaluation mode (no dropout): z (rows, in) through one router's layers, or (D, rows, in)
    through stacked layers, each member its own rows."""
    *hidden, last = zip(params.weights, params.biases)
    h = z
    for weight, bias in hidden:
        h = _linear(h, weight, bias).relu_()
    return _linear(h, *last)


def gradients(params: Layers, grads: Layers, z: torch.Tensor, mask: torch.Tensor, keep: torch.Tensor | None,
              dropout: float, balance_weight: float, n_outputs: torch.Tensor | None = None) -> None:
    """Fill `grads` with the gradients of the training loss (see `Router`) on a batch, with dropout `keep` (per
    hidden unit 1/(1-p) where kept, 0 where dropped; None: none).

    One router: z (rows, in), mask (rows, out). Stacked routers: z (D, rows, in), mask (D, rows, out), one batch per
    member, and `n_outputs` (D,) the outputs each member has of the stacked width: the others are padding, outside
    the loss, so their gradients are zero and padded parameters stay zero."""
    inputs = []  # each layer's input (a hidden layer's output after ReLU and dropout)
    h, at = z, 0
    layers = list(zip(params.weights, params.biases))
    for weight, bias in layers[:-1]:
        inputs.append(h)
        h = _linear(h, weight, bias).relu_()
        if keep is not None:
            h = h.mul_(keep[..., at : at + h.shape[-1]])
            at += h.shape[-1]
    inputs.append(h)
    logits = _linear(h, *layers[-1])
    if z.dim() == 2:
        d = _loss_gradient(logits, mask, balance_weight)
    else:
        d = _stacked_loss_gradient(logits, mask, balance_weight, n_outputs)
    for i in reversed(range(len(layers))):
        if d.dim() == 2:
            torch.mm(d.t(), inputs[i], out=grads.weights[i])
            torch.sum(d, dim=0, out=grads.biases[i])
        else:
            torch.bmm(d.transpose(1, 2), inputs[i], out=grads.weights[i])
            torch.sum(d, dim=1, out=grads.biases[i])
        if i:  # back through dropout and ReLU: a unit passed (input > 0, sign 1) with the kept units' scale
            d = (d @ layers[i][0]).mul_(inputs[i].sign())
            if keep is not None:
                d = d.mul_(1.0 / (1.0 - dropout))


def _loss_gradient(logits: torch.Tensor, mask: torch.Tensor, balance_weight: float) -> torch.Tensor:
    """The gradient of one router's loss at its logits (rows, out)."""
    rows, n_out = logits.shape
    d = (torch.sigmoid(logits) - mask).div_(rows * n_out)  # of the mean binary cross-entropy
    if balance_weight > 0 and n_out > 1:
        # importance = the mean softmax gate; loss var/mean^2 (var unbiased), through the softmax's Jacobian
        # (its two statistics as Python numbers: six small tensor operations fewer, several us each on a CPU; on
        # CUDA this reads them back, one synchronisation per step)
        gate = torch.softmax(logits, dim=1)
        importance = gate.mean(dim=0)
        var, mean = (float(t) for t in torch.var_mean(importance))
        scale = 2 * balance_weight / mean**2
        d_importance = importance.sub(mean).mul_(scale / (n_out - 1)).sub_(scale * var / (mean * n_out))
        d.addcmul_(gate, d_importance - (gate @ d_importance)[:, None], value=1 / rows)
    return d


def _stacked_loss_gradient(logits: torch.Tensor, mask: torch.Tensor, balance_weight: float,
                           n_outputs: torch.Tensor | None) -> torch.Tensor:
    """`_loss_gradient` for stacked routers' logits (D, rows, width), each member over its first `n_outputs`
    outputs (None: all), zero on the padding; statistics stay on the device (no synchronisation)."""
    members, rows, width = logits.shape
    if n_outputs is None:
        valid, n, below = None, float(width), float(max(width - 1, 1))
    else:
        valid = (torch.arange(width, device=logits.device) < n_outputs[:, None])[:, None, :]  # (D, 1, width)
        n = n_outputs.to(logits.dtype)[:, None, None]
        below = (n - 1).clamp_(min=1)
    d = (torch.sigmoid(logits) - mask).div_(n * rows)  # of the mean binary cross-entropy
    if valid is not None:
        d.mul_(valid)
    if balance_weight > 0 and (valid is not None or width > 1):  # members with one output have no balance term
        gate = torch.softmax(logits if valid is None else logits.masked_fill(~valid, -math.inf), dim=2)
        importance = gate.mean(dim=1, keepdim=True)  # (D, 1, width)
        mean = importance.sum(dim=2, keepdim=True).div_(n)
        centred = importance - mean
        if valid is not None:
            centred.mul_(valid)
        var = centred.square().sum(dim=2, keepdim=True).div_(below)
        scale = (2 * balance_weight) / mean.square()
        spread = scale * var / (mean * n)
        if valid is not None:
            scale.mul_(n > 1)
            spread = spread.mul_(n > 1) * valid
        d_importance = centred.mul_(scale / below).sub_(spread)
        d.addcmul_(gate, d_importance - (gate * d_importance).sum(dim=2, keepdim=True), value=1 / rows)
    return d


class Router:
    """MLP d -> hidden... -> E with ReLU, dropout (training only, drawn from the router's own seeded generator), Xavier
    init.

    Training: `observe` buffers (input, multi-hot mask) pairs; every `batch_size` of them it takes `epochs` Adam steps on
    the mean `BCEWithLogits` loss against the mask, plus `balance_weight` times the squared coefficient of variation of
    the experts' mean softmax gate (the importance loss of Shazeer et al. 2017), which keeps the gate from collapsing
    onto a few experts. Both passes and Adam (torch's, with its default betas and eps) are written out by hand on flat
    buffers (`Layers`): on matrices this small the per-call overhead of autograd and `torch.optim` was most of an update
    (on this CPU, 32 rows, hidden (256, 128): `optimizer.step()` alone about 330 us against about 60 for the same
    arithmetic on one flat buffer; tests hold the gradients to autograd's and the steps to `torch.optim.Adam`'s).

    >>> r = Router(n_inputs=2, n_outputs=3, hidden=(8,), batch_size=4, seed=0)
    >>> r.scores(np.zeros((1, 2), dtype=np.float32)).shape
    (1, 3)
    >>> r.add_output()
    3
    >>> r.scores(np.zeros((5, 2), dtype=np.float32)).shape
    (5, 4)
    """

    def __init__(
        self,
        n_inputs: int,
        n_outputs: int,
        hidden: tuple[int, ...] = (256, 128),
        dropout: float = 0.2,
        lr: float = 2e-3,
        batch_size: int = 256,
        epochs: int = 1,
        balance_weight: float = 0.0,
        device: str = "auto",
        seed: int = 0,
    ):
        self.hidden = tuple(hidden)
        self.dropout = dropout
        self.lr = lr
        self.batch_size = batch_size
        self.epochs = epochs
        self.balance_weight = balance_weight
        self.device_name = device
        self.seed = seed
        self.n_steps = 0
        self.adam_steps = 0
        self._n_rows_made = 0  # output rows created or reset so far: each gets its own seeded initialisation
        self._z: list[np.ndarray] = []
        self._masks: list[np.ndarray] = []
        self._buffered = 0
        # dropout draws: numpy's generator, twice as fast as torch's on the CPU, and the same on every device
        self._dropout_rng = np.random.default_rng(seed + 1)
        params = initial_layers([n_inputs, *self.hidden, n_outputs], seed)
        self._place(params, params.zeros_like(), params.zeros_like())

    def _place(self, params: Layers, exp_avg: Layers, exp_avg_sq: Layers) -> None:
        """Put the parameters and their Adam moments on the router's device, with a gradient buffer beside them."""
        self.device = resolve_device(self.device_name)
        self.params, self.exp_avg, self.exp_avg_sq = (
            Layers(layers.sizes, layers.flat.to(self.device)) for layers in (params, exp_avg, exp_avg_sq)
        )
        self.grads = self.params.zeros_like()

    @property
    def n_inputs(self) -> int:
        return self.params.sizes[0]

    @property
    def n_outputs(self) -> int:
        return self.params.sizes[-1]

    def scores(self, z: np.ndarray) -> np.ndarray:
        """Gate logits for a batch of encoded inputs (evaluation mode: no dropout, no gradient)."""
        with torch.no_grad():
            return forward(self.params, torch.from_numpy(self._fit_width(z)).to(self.device)).cpu().numpy()

    def _fit_width(self, z: np.ndarray) -> np.ndarray:
        """Pad inputs encoded before the input layer grew; growth never shrinks, so wider input is a caller bug."""
        if z.shape[1] < self.n_inputs:
            z = np.pad(z, ((0, 0), (0, self.n_inputs - z.shape[1])))
        return np.ascontiguousarray(z, dtype=np.float32)

    def observe(self, z: np.ndarray, mask: np.ndarray) -> bool:
        """Buffer training pairs; every `batch_size` of them, in order, make one training batch, so the router learns
        the same whatever the size of the micro-batches that bring them. Returns whether a training step ran."""
        self._z.append(self._fit_width(z))
        self._masks.append(np.asarray(mask, dtype=np.float32))
        self._buffered += len(z)
        if self._buffered < self.batch_size:
            return False
        z, mask = np.concatenate(self._z), np.concatenate(self._masks)
        full = len(z) - len(z) % self.batch_size
        # every step's dropout in one draw, in the order the steps take them
        keep = self._keep_scales(full * self.epochs)
        zt, mt = (torch.from_numpy(a[:full]).to(self.device) for a in (z, mask))
        with torch.no_grad():
            for start in range(0, full, self.batch_size):
                for epoch in range(self.epochs):
                    at = start * self.epochs + epoch * self.batch_size
                    self._gradients(zt[start : start + self.batch_size], mt[start : start + self.batch_size],
                                    None if keep is None else keep[at : at + self.batch_size])
                    self._adam_step()
                self.n_steps += 1
        self._z, self._masks, self._buffered = [z[full:]], [mask[full:]], len(z) - full
        return True

    def _adam_step(self) -> None:
        self.adam_steps += 1
        # 0.9**170 = 1.2e-38 / 1e-30: between flushes no first moment gets to the denormals
        adam_step(self.params.flat, self.grads.flat, self.exp_avg.flat, self.exp_avg_sq.flat,
                  *adam_scalars(self.adam_steps, self.lr), self.adam_steps % FLUSH_EVERY == 0)

    def _keep_scales(self, rows: int) -> torch.Tensor | None:
        """Dropout for every hidden unit of `rows` rows, one draw for all layers: 1/(1-p) where a unit is kept, 0
        where it is dropped."""
        kept = dropout_kept(self._dropout_rng, rows, sum(self.hidden), self.dropout)
        if kept is None:
            return None
        keep = kept * np.float32(1.0 / (1.0 - self.dropout))  # (np.where: 50 us more on 32 rows)
        return torch.from_numpy(keep).to(self.device)

    def _gradients(self, z: torch.Tensor, mask: torch.Tensor, keep: torch.Tensor | None) -> None:
        """Fill `grads` with the gradients of the training loss on a batch, with dropout `keep` (`_keep_scales`)."""
        gradients(self.params, self.grads, z, mask, keep, self.dropout, self.balance_weight)

    # ---- growth -------------------------------------------------------------------------------------------------

    def grow_inputs(self, n_inputs: int) -> None:
        """Widen the input layer to `n_inputs` columns; new columns start at zero so outputs do not change."""
        extra = n_inputs - self.n_inputs
        if extra <= 0:
            return
        self._edit(0, weight=lambda t, moment: torch.cat([t, t.new_zeros(t.shape[0], extra)], dim=1))
        self._z = [np.pad(z, ((0, 0), (0, n_inputs - z.shape[1]))) for z in self._z]

    def _fresh_row(self, tag: int) -> torch.Tensor:
        return fresh_row(self.seed, tag, *self.params.sizes[-2:])

    def add_output(self) -> int:
        """Add one output (a new expert): a fresh row, zero bias; existing outputs stay bit-identical."""
        self._n_rows_made += 1
        row = self._fresh_row(self.n_outputs + 1000 * self._n_rows_made)
        self._edit(-1, weight=lambda t, m: torch.cat([t, t.new_zeros(1, t.shape[1]) if m else row.to(t)]),
                   bias=lambda t, m: torch.cat([t, t.new_zeros(1)]))
        self._masks = [np.pad(m, ((0, 0), (0, 1))) for m in self._masks]
        return self.n_outputs - 1

    def reset_output(self, i: int) -> None:
        """Forget what output `i` learned (its expert was replaced): a fresh row, zero bias, zero Adam moments."""
        self._n_rows_made += 1
        row = self._fresh_row(i + 1000 * self._n_rows_made)

        def reset(t: torch.Tensor, moment: bool) -> torch.Tensor:
            t = t.clone()
            t[i] = 0 if moment or t.dim() == 1 else row[0].to(t)
            return t

        self._edit(-1, weight=reset, bias=reset)
        for m in self._masks:
            m[:, i] = 0.0

    def remove_output(self, i: int) -> None:
        """Drop output `i` (its expert was pruned); the others keep their weights, outputs after it shift down."""
        keep = [j for j in range(self.n_outputs) if j != i]
        self._edit(-1, weight=lambda t, m: t[keep], bias=lambda t, m: t[keep])
        self._masks = [m[:, keep] for m in self._masks]

    def _edit(self, i: int, weight=None, bias=None) -> None:
        """Replace layer i's weight by `weight(it, False)` and its Adam moments by `weight(moment, True)`; its bias
        likewise by `bias` (None: unchanged)."""

        def of(moment: bool) -> list:  # the two edits with `moment` given
            return [None if edit is None else (lambda t, edit=edit: edit(t, moment)) for edit in (weight, bias)]

        self._place(self.params.edited(i, *of(False)), self.exp_avg.edited(i, *of(True)),
                    self.exp_avg_sq.edited(i, *of(True)))

    # ---- pickling: tensors travel as CPU state so a checkpoint restores on any device --------------------------

    def __getstate__(self):
        tensors = ("params", "exp_avg", "exp_avg_sq", "grads", "device")
        state = {k: v for k, v in self.__dict__.items() if k not in tensors}
        state["_sizes"] = self.params.sizes
        state["_flats"] = [layers.flat.cpu() for layers in (self.params, self.exp_avg, self.exp_avg_sq)]
        return state

    def __setstate__(self, state):
        sizes = state.pop("_sizes")
        flats = state.pop("_flats")
        self.__dict__.update(state)
        self._place(*(Layers(sizes, flat) for flat in flats))
