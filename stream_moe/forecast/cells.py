"""Liquid time-constant recurrent cells in torch: CfC (closed-form continuous-time) and LTC (liquid time-constant).

Both map an input batch ``x`` (batch x inputs), the hidden state ``h`` (batch x hidden) and the time elapsed since the
previous step ``ts`` (batch x 1, 1.0 for regular sampling) to the next hidden state. The batch is the set of series
(links), so a whole network advances in one call. A step is split in three: `sense(x)`, the part that depends on the
input alone, `prepare()`, the part that depends on the weights alone, and `step(sensed, h, ts, prepared)`, the rest.
`run` steps a cell over a sequence, sensing all its inputs and preparing the weights once, so that a window costs
a few small operations per step, forward and backward, and `fit_window` puts the gradients of a forecast head's error
over a window into the parameters (the forecasters' online update, at every step). CfC goes further: both passes are
written by hand (`stream_moe.forecast.cfc_window`), because with tensors this small the cost of a window is torch's
overhead per operation, not arithmetic. Stepping by hand and carrying ``h`` gives the same states.

>>> _ = torch.manual_seed(0)
>>> cell = CfCCell(2, 4)
>>> x = torch.randn(3, 5, 2)                    # 3 series, 5 steps, 2 inputs
>>> states = cell.run(x, torch.zeros(3, 4))
>>> h = torch.zeros(3, 4)
>>> for t in range(5):
...     h = cell(x[:, t], h)
>>> states.shape, bool(torch.allclose(states[:, -1], h, atol=1e-6))
(torch.Size([3, 5, 4]), True)

References: Hasani et al., "Closed-form continuous-time neural networks", Nature Machine Intelligence 2022 (CfC);
Hasani et al., "Liquid time-constant networks", AAAI 2021 (LTC, with its fused semi-implicit ODE solver).
"""

from __future__ import annotations

import torch
from torch import nn

from stream_moe.forecast import cfc_window


class LiquidCell(nn.Module):
    """A step of either cell: `sense`, `prepare`, then `step`."""

    def forward(self, x: torch.Tensor, h: torch.Tensor, ts: torch.Tensor | float = 1.0) -> torch.Tensor:
        return self.step(self.sense(x), h, ts, self.prepare())

    def run(self, x: torch.Tensor, h: torch.Tensor, ts: torch.Tensor | None = None) -> torch.Tensor:
        """The hidden states after each step of ``x`` (batch x steps x inputs), starting from ``h``; ``ts`` (batch x
        steps) the time spans, all 1 when None."""
        prepared = self.prepare()
        states = []
        for t, sensed in enumerate(self.sense(x.transpose(0, 1)).unbind(0)):  # steps first: each step contiguous
            h = self.step(sensed, h, 1.0 if ts is None else ts[:, t : t + 1], prepared)
            states.append(h)
        return torch.stack(states, dim=1)

    def fit_window(self, x: torch.Tensor, h: torch.Tensor, ts: torch.Tensor | None, head: nn.Linear,
                   target: torch.Tensor) -> None:
        """Set the gradients (``.grad``) of the cell's and the head's parameters to those of the mean squared error
        of ``head`` over the states of `run` against ``target`` (batch x steps)."""
        for p in (*self.parameters(), *head.parameters()):
            p.grad = None
        nn.functional.mse_loss(head(self.run(x, h, ts)).squeeze(-1), target).backward()


class CfCCell(LiquidCell):
    """h' = (1 - sigma(-f(z) t)) * g(z) + sigma(-f(z) t) * k(z), z = backbone([x, h]): a gate driven by time decides
    how far the state moves from one target (g) to the other (k); with ``ts`` the gate follows irregular sampling."""

    def __init__(self, input_size: int, hidden_size: int, backbone: int = 32):
        super().__init__()
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.backbone = nn.Sequential(nn.Linear(input_size + hidden_size, backbone), nn.Tanh())
        self.heads = nn.Linear(backbone, 4 * hidden_size)  # g, k, time_a, time_b in one matrix product

    def sense(self, x: torch.Tensor) -> torch.Tensor:
        """The backbone's product with the input, and its bias."""
        linear = self.backbone[0]
        return nn.functional.linear(x, linear.weight[:, : self.input_size], linear.bias)

    def prepare(self) -> torch.Tensor:
        """The backbone's recurrent weights, transposed."""
        return self.backbone[0].weight[:, self.input_size :].t()

    def step(self, sensed: torch.Tensor, h: torch.Tensor, ts: torch.Tensor | float, recurrent: torch.Tensor):
        z = torch.tanh(torch.addmm(sensed, h, recurrent))
        gk, time_a, time_b = self.heads(z).split([2 * self.hidden_size, self.hidden_size, self.hidden_size], dim=1)
        g, k = torch.tanh(gk).chunk(2, dim=1)
        return torch.lerp(g, k, torch.sigmoid(time_b - time_a * ts))

    def _window(self, x: torch.Tensor, h: torch.Tensor, ts: torch.Tensor | None) -> tuple:
        """The arguments of `cfc_window`: steps first, and the weights."""
        linear = self.backbone[0]
        spans = None if ts is None else ts.t().unsqueeze(-1)
        return x.transpose(0, 1), h, spans, linear.weight, linear.bias, self.heads.weight, self.heads.bias

    def run(self, x: torch.Tensor, h: torch.Tensor, ts: torch.Tensor | None = None) -> torch.Tensor:
        """As `LiquidCell.run` (the same states, up to float rounding), through `cfc_window.CfCWindow`."""
        return cfc_window.CfCWindow.apply(*self._window(x, h, ts)).transpose(0, 1)

    @torch.no_grad()
    def fit_window(self, x: torch.Tensor, h: torch.Tensor, ts: torch.Tensor | None, head: nn.Linear,
                   target: torch.Tensor) -> None:
        """As `LiquidCell.fit_window` (the same gradients, up to float rounding), by `cfc_window`'s passes without
        autograd, whose recording, replay and bookkeeping cost as much as the passes themselves here."""
        saved = cfc_window.forward(*self._window(x, h, ts))
        states = saved[-1]
        steps, batch, hidden = states.shape
        error = torch.addmm(head.bias, states.view(-1, hidden), head.weight.t()).view(steps, batch) - target.t()
        d_forecast = error.mul_(2 / error.numel())  # of the mean squared error
        head.weight.grad = d_forecast.view(1, -1) @ states.view(-1, hidden)
        head.bias.grad = d_forecast.sum().view(1)
        _, _, *grads = cfc_window.backward(saved, d_forecast.unsqueeze(-1) * head.weight)
        linear = self.backbone[0]
        for p, grad in zip((linear.weight, linear.bias, self.heads.weight, self.heads.bias), grads):
            p.grad = grad


class LTCCell(LiquidCell):
    """dv/dt = -(g_leak (v - v_leak) + sum_j w_j sigma(v_j) (v - E_j)) / c_m, with sensory synapses from the inputs and
    recurrent ones between neurons, integrated over ``ts`` by `unfolds` semi-implicit Euler steps (the LTC solver)."""

    def __init__(self, input_size: int, hidden_size: int, unfolds: int = 6):
        super().__init__()
        self.hidden_size = hidden_size
        self.unfolds = unfolds
        self.input_w = nn.Parameter(torch.ones(input_size))
        self.input_b = nn.Parameter(torch.zeros(input_size))
        for prefix, fan_in in (("sensory_", input_size), ("", hidden_size)):
            self.register_parameter(prefix + "mu", nn.Parameter(torch.rand(fan_in, hidden_size) * 0.5 + 0.3))
            self.register_parameter(prefix + "sigma", nn.Parameter(torch.rand(fan_in, hidden_size) * 5 + 3))
            self.register_parameter(prefix + "w", nn.Parameter(torch.rand(fan_in, hidden_size) * 0.99 + 0.01))
            self.register_parameter(prefix + "erev", nn.Parameter(torch.randint(0, 2, (fan_in, hidden_size)) * 2.0 - 1))
        self.gleak = nn.Parameter(torch.rand(hidden_size) * 0.99 + 0.01)
        self.vleak = nn.Parameter(torch.rand(hidden_size) * 0.4 - 0.2)
        self.cm = nn.Parameter(torch.rand(hidden_size) * 0.2 + 0.4)

    @staticmethod
    def synapses(v, mu, sigma, weight, erev):
        """Numerator and denominator contributions of synapses of (positive) `weight` from presynaptic potentials v
        (... x fan_in)."""
        act = weight * torch.sigmoid(sigma * (v.unsqueeze(-1) - mu))
        return (act * erev).sum(-2), act.sum(-2)

    def sense(self, x: torch.Tensor) -> torch.Tensor:
        """The sensory synapses' numerator and denominator contributions, side by side."""
        x = x * self.input_w + self.input_b
        w = nn.functional.softplus(self.sensory_w)
        return torch.cat(self.synapses(x, self.sensory_mu, self.sensory_sigma, w, self.sensory_erev), dim=-1)

    def prepare(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The positive weights: recurrent synapses, membrane capacitance per unfold, leak conductance."""
        softplus = nn.functional.softplus
        return softplus(self.w), softplus(self.cm) * self.unfolds, softplus(self.gleak)

    def step(self, sensed: torch.Tensor, h: torch.Tensor, ts: torch.Tensor | float, prepared) -> torch.Tensor:
        w, cm, gleak = prepared
        num_s, den_s = sensed.chunk(2, dim=-1)
        cm = cm / ts
        numerator = gleak * self.vleak + num_s  # the parts that do not change over the unfolds
        denominator = cm + gleak + den_s + 1e-8
        v = h
        for _ in range(self.unfolds):
            num, den = self.synapses(v, self.mu, self.sigma, w, self.erev)
            v = (cm * v + numerator + num) / (denominator + den)
        return v


CELLS = {"cfc": CfCCell, "ltc": LTCCell}


