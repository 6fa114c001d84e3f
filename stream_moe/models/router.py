"""The gating network of a mixture of experts: a torch MLP trained on micro-batches of correctness masks.

`Router` owns device placement, the optimizer, the training buffer, and growth: new input columns (new features or
categories) and new outputs (new experts) are added with the old weights, and their Adam moments, kept exactly.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F


def resolve_device(device: str) -> torch.device:
    """'auto' picks CUDA when present, else the CPU; 'cpu' and 'cuda[:n]' are taken as given."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


class Router:
    """MLP d -> hidden... -> E with ReLU, dropout (training only, from the router's own seeded generator), Xavier init.

    Training: `observe` buffers (input, multi-hot mask) pairs; every `batch_size` of them it takes `epochs` Adam steps on
    the mean `BCEWithLogits` loss against the mask, plus `balance_weight` times the squared coefficient of variation of
    the experts' mean softmax gate (the importance loss of Shazeer et al. 2017), which keeps the gate from collapsing
    onto a few experts.

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
        self._n_rows_made = 0  # output rows created or reset so far: each gets its own seeded initialisation
        self._z: list[np.ndarray] = []
        self._masks: list[np.ndarray] = []
        self._buffered = 0
        self._build([n_inputs, *self.hidden, n_outputs])
        gen = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for layer in self.layers:
                layer.weight.copy_(nn.init.xavier_uniform_(torch.empty_like(layer.weight, device="cpu"), generator=gen))
                layer.bias.zero_()

    def _build(self, sizes: list[int]) -> None:
        self.device = resolve_device(self.device_name)
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:])).to(self.device)
        # fused: one kernel for all parameters; a third less time per step than the default on this CPU
        self.optimizer = torch.optim.Adam(self.layers.parameters(), lr=self.lr, fused=True)
        self._dropout_gen = torch.Generator(device=self.device).manual_seed(self.seed + 1)

    @property
    def n_inputs(self) -> int:
        return self.layers[0].in_features

    @property
    def n_outputs(self) -> int:
        return self.layers[-1].out_features

    def scores(self, z: np.ndarray) -> np.ndarray:
        """Gate logits for a batch of encoded inputs (evaluation mode: no dropout, no gradient)."""
        with torch.no_grad():
            h = torch.from_numpy(self._fit_width(z)).to(self.device)
            *hidden, last = self.layers  # (slicing a ModuleList builds a new one: slow at this scale)
            for layer in hidden:
                h = F.linear(h, layer.weight, layer.bias).relu_()
            return F.linear(h, last.weight, last.bias).cpu().numpy()

    def _fit_width(self, z: np.ndarray) -> np.ndarray:
        """Pad inputs encoded before the input layer grew; growth never shrinks, so wider input is a caller bug."""
        if z.shape[1] < self.n_inputs:
            z = np.pad(z, ((0, 0), (0, self.n_inputs - z.shape[1])))
        return np.ascontiguousarray(z, dtype=np.float32)

    def observe(self, z: np.ndarray, mask: np.ndarray) -> bool:
        """Buffer training pairs; train when `batch_size` are buffered. Returns whether a training step ran."""
        self._z.append(self._fit_width(z))
        self._masks.append(np.asarray(mask, dtype=np.float32))
        self._buffered += len(z)
        if self._buffered < self.batch_size:
            return False
        self._train(np.concatenate(self._z), np.concatenate(self._masks))
        self._z, self._masks, self._buffered = [], [], 0
        return True

    def _train(self, z: np.ndarray, mask: np.ndarray) -> None:
        zt = torch.from_numpy(z).to(self.device)
        mt = torch.from_numpy(mask).to(self.device)
        with torch.no_grad():
            for _ in range(self.epochs):
                self._gradients(zt, mt)
                self.optimizer.step()
        self.n_steps += 1

    def _gradients(self, z: torch.Tensor, mask: torch.Tensor) -> None:
        """Set the parameters' gradients (``.grad``) of the training loss on a batch, with dropout drawn from the
        router's generator. Both passes are written by hand: on matrices this small autograd's recording and replay
        cost more than the arithmetic (an update took about a third less time on this CPU; tests hold the gradients
        to autograd's)."""
        inputs = []  # each layer's input (a hidden layer's output after ReLU and dropout)
        scale = 1.0 / (1.0 - self.dropout)  # of the units dropout keeps
        h = z
        layers = list(self.layers)
        for layer in layers[:-1]:
            inputs.append(h)
            h = F.linear(h, layer.weight, layer.bias).relu_()
            if self.dropout > 0:
                keep = torch.rand(h.shape, generator=self._dropout_gen, device=h.device).ge_(self.dropout)
                h = h.mul_(keep.mul_(scale))
        inputs.append(h)
        last = layers[-1]
        logits = F.linear(h, last.weight, last.bias)
        rows, n_out = logits.shape
        d = (torch.sigmoid(logits) - mask).div_(rows * n_out)  # of the mean binary cross-entropy
        if self.balance_weight > 0 and n_out > 1:
            # importance = the mean softmax gate; loss var/mean^2 (var unbiased), through the softmax's Jacobian
            gate = torch.softmax(logits, dim=1)
            importance = gate.mean(dim=0)
            mean = importance.mean()
            var = importance.var()
            d_importance = (importance - mean) / (n_out - 1) - var / (mean * n_out)
            d_importance *= 2 * self.balance_weight / mean**2
            d += gate * (d_importance - (gate @ d_importance)[:, None]) / rows
        for i in reversed(range(len(layers))):
            layer = layers[i]
            layer.weight.grad = d.t() @ inputs[i]
            layer.bias.grad = d.sum(dim=0)
            if i:  # back through dropout and ReLU: a unit passed (input > 0, sign 1) with the kept units' scale
                d = (d @ layer.weight).mul_(inputs[i].sign())
                if self.dropout > 0:
                    d = d.mul_(scale)

    # ---- growth -------------------------------------------------------------------------------------------------

    def grow_inputs(self, n_inputs: int) -> None:
        """Widen the input layer to `n_inputs` columns; new columns start at zero so outputs do not change."""
        extra = n_inputs - self.n_inputs
        if extra <= 0:
            return
        first = self.layers[0]
        self._edit_param(first, "weight", lambda t, moment: torch.cat([t, t.new_zeros(t.shape[0], extra)], dim=1))
        first.in_features = n_inputs
        self._z = [np.pad(z, ((0, 0), (0, n_inputs - z.shape[1]))) for z in self._z]

    def _fresh_row(self, tag: int) -> torch.Tensor:
        """A Xavier-uniform output row from a generator seeded by the router's seed and `tag` (reproducible)."""
        last = self.layers[-1]
        gen = torch.Generator().manual_seed(int(self.seed + 7919 * tag))
        bound = float(np.sqrt(6.0 / (last.in_features + last.out_features)))
        return (torch.rand(1, last.in_features, generator=gen) * 2 - 1) * bound

    def add_output(self) -> int:
        """Add one output (a new expert): a fresh row, zero bias; existing outputs stay bit-identical."""
        self._n_rows_made += 1
        row = self._fresh_row(self.n_outputs + 1000 * self._n_rows_made)
        last = self.layers[-1]
        self._edit_param(last, "weight", lambda t, m: torch.cat([t, t.new_zeros(1, t.shape[1]) if m else row.to(t)]))
        self._edit_param(last, "bias", lambda t, m: torch.cat([t, t.new_zeros(1)]))
        last.out_features += 1
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

        last = self.layers[-1]
        self._edit_param(last, "weight", reset)
        self._edit_param(last, "bias", reset)
        for m in self._masks:
            m[:, i] = 0.0

    def remove_output(self, i: int) -> None:
        """Drop output `i` (its expert was pruned); the others keep their weights, outputs after it shift down."""
        keep = [j for j in range(self.n_outputs) if j != i]
        last = self.layers[-1]
        self._edit_param(last, "weight", lambda t, m: t[keep])
        self._edit_param(last, "bias", lambda t, m: t[keep])
        last.out_features -= 1
        self._masks = [m[:, keep] for m in self._masks]

    def _edit_param(self, layer: nn.Linear, name: str, edit) -> None:
        """Replace a parameter by `edit(tensor, False)` and its Adam moments by `edit(moment, True)`."""
        old = getattr(layer, name)
        new = nn.Parameter(edit(old.data, False))
        state = self.optimizer.state.pop(old, None)
        if state:
            for key in ("exp_avg", "exp_avg_sq"):
                state[key] = edit(state[key], True)
        setattr(layer, name, new)
        for group in self.optimizer.param_groups:
            group["params"] = [new if p is old else p for p in group["params"]]
        if state:
            self.optimizer.state[new] = state

    # ---- pickling: tensors travel as CPU state so a checkpoint restores on any device --------------------------

    def __getstate__(self):
        state = {k: v for k, v in self.__dict__.items() if k not in ("layers", "optimizer", "_dropout_gen", "device")}
        state["_sizes"] = [self.n_inputs] + [layer.out_features for layer in self.layers]
        state["_weights"] = {k: v.cpu() for k, v in self.layers.state_dict().items()}
        state["_optimizer"] = _to_cpu(self.optimizer.state_dict())
        state["_dropout_state"] = (self.device.type, self._dropout_gen.get_state().cpu())
        return state

    def __setstate__(self, state):
        sizes = state.pop("_sizes")
        weights = state.pop("_weights")
        optimizer = state.pop("_optimizer")
        dropout_state = state.pop("_dropout_state")
        self.__dict__.update(state)
        self._build(sizes)
        self.layers.load_state_dict(weights)
        self.optimizer.load_state_dict(optimizer)
        device_type, generator_state = dropout_state
        if device_type == self.device.type:  # generator states are not portable between CPU and CUDA
            self._dropout_gen.set_state(generator_state)


def _to_cpu(obj):
    if isinstance(obj, torch.Tensor):
        return obj.cpu()
    if isinstance(obj, dict):
        return {k: _to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_to_cpu(v) for v in obj]
    return obj
