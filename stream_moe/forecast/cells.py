"""Liquid time-constant recurrent cells in torch: CfC (closed-form continuous-time) and LTC (liquid time-constant).

Both map an input batch ``x`` (batch x inputs), the hidden state ``h`` (batch x hidden) and the time elapsed since the
previous step ``ts`` (batch x 1, 1.0 for regular sampling) to the next hidden state. The batch is the set of series
(links), so a whole network advances in one call. `run` steps a cell over a sequence; stepping it by hand and carrying
``h`` gives the same states.

>>> _ = torch.manual_seed(0)
>>> cell = CfCCell(2, 4)
>>> x = torch.randn(3, 5, 2)                    # 3 series, 5 steps, 2 inputs
>>> states = run(cell, x, torch.zeros(3, 4))
>>> h = torch.zeros(3, 4)
>>> for t in range(5):
...     h = cell(x[:, t], h)
>>> states.shape, bool(torch.allclose(states[:, -1], h))
(torch.Size([3, 5, 4]), True)

References: Hasani et al., "Closed-form continuous-time neural networks", Nature Machine Intelligence 2022 (CfC);
Hasani et al., "Liquid time-constant networks", AAAI 2021 (LTC, with its fused semi-implicit ODE solver).
"""

from __future__ import annotations

import torch
from torch import nn


class CfCCell(nn.Module):
    """h' = (1 - sigma(-f(z) t)) * g(z) + sigma(-f(z) t) * k(z), z = backbone([x, h]): a gate driven by time decides
    how far the state moves from one target (g) to the other (k); with ``ts`` the gate follows irregular sampling."""

    def __init__(self, input_size: int, hidden_size: int, backbone: int = 32):
        super().__init__()
        self.hidden_size = hidden_size
        self.backbone = nn.Sequential(nn.Linear(input_size + hidden_size, backbone), nn.Tanh())
        self.heads = nn.Linear(backbone, 4 * hidden_size)  # g, k, time_a, time_b in one matrix product

    def forward(self, x: torch.Tensor, h: torch.Tensor, ts: torch.Tensor | float = 1.0) -> torch.Tensor:
        g, k, time_a, time_b = self.heads(self.backbone(torch.cat([x, h], dim=1))).chunk(4, dim=1)
        gate = torch.sigmoid(-time_a * ts + time_b)
        return torch.tanh(g) * (1 - gate) + gate * torch.tanh(k)


class LTCCell(nn.Module):
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
    def synapses(v, mu, sigma, w, erev):
        """Numerator and denominator contributions of synapses from presynaptic potentials v (batch x fan_in)."""
        act = nn.functional.softplus(w) * torch.sigmoid(sigma * (v.unsqueeze(-1) - mu))
        return (act * erev).sum(1), act.sum(1)

    def forward(self, x: torch.Tensor, h: torch.Tensor, ts: torch.Tensor | float = 1.0) -> torch.Tensor:
        x = x * self.input_w + self.input_b
        num_s, den_s = self.synapses(x, self.sensory_mu, self.sensory_sigma, self.sensory_w, self.sensory_erev)
        cm = nn.functional.softplus(self.cm) / (ts / self.unfolds)
        gleak = nn.functional.softplus(self.gleak)
        v = h
        for _ in range(self.unfolds):
            num, den = self.synapses(v, self.mu, self.sigma, self.w, self.erev)
            v = (cm * v + gleak * self.vleak + num + num_s) / (cm + gleak + den + den_s + 1e-8)
        return v


CELLS = {"cfc": CfCCell, "ltc": LTCCell}


def run(cell: nn.Module, x: torch.Tensor, h: torch.Tensor, ts: torch.Tensor | None = None) -> torch.Tensor:
    """The hidden states after each step of ``x`` (batch x steps x inputs), starting from ``h``; ``ts`` (batch x steps)
    the time spans, all 1 when None."""
    states = []
    for t in range(x.shape[1]):
        h = cell(x[:, t], h, 1.0 if ts is None else ts[:, t : t + 1])
        states.append(h)
    return torch.stack(states, dim=1)
