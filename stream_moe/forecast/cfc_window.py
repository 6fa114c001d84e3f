"""A CfC cell stepped over a window, forward and backward written by hand: the online update of a liquid forecaster.

With tensors this small (a few dozen links x 16 neurons), a window costs torch's overhead per operation, not
arithmetic, so both passes are written for the fewest operations:

- Forward, a step is two products, two sigmoids and a `lerp`. tanh(a) = 2 sigmoid(2a) - 1, and torch's tanh costs
  about three sigmoids on a CPU, so the state is kept as u = (h + 1) / 2 and the weights absorb the factors and
  offsets; the heads' rows are reordered so that one sigmoid gives g and k and, at a time span of 1, the time gate.
- Backward, a step is one product back through the heads and one through the recurrent weights; the weights'
  gradients are summed over the window in one product each. Autograd records and replays about twenty operations a
  step.

`CfCWindow` makes the pair an autograd function; `CfCCell.fit_window` uses them directly, without autograd.
Shapes are steps first: x steps x batch x inputs, h0 batch x hidden, ts steps x batch x 1 or None (spans of 1).
"""

from __future__ import annotations

import torch
from torch import nn


def forward(x, h0, ts, weight, bias, heads_weight, heads_bias) -> tuple:
    """The states after each step (steps x batch x hidden), last, after what the backward pass needs."""
    hidden, inputs = h0.shape[1], x.shape[2]
    recurrent = weight[:, inputs:]
    # backbone: sigmoid(2 (Wx + b + R h)) = sigmoid(2 (Wx + b - R 1) + 4 R u)
    sensed = nn.functional.linear(x, weight[:, :inputs], bias - recurrent.sum(1)).mul_(2)
    recurrent_u = 4 * recurrent.t()
    # heads of z = 2 s - 1, as rows 2 g, 2 k, time_b - time_a (the gate's input at a span of 1), time_a
    g_k, time_a, time_b = 2 * hidden, slice(2 * hidden, 3 * hidden), slice(3 * hidden, None)
    heads_w = torch.cat([2 * heads_weight[:g_k], heads_weight[time_b] - heads_weight[time_a], heads_weight[time_a]])
    heads_b = torch.cat([2 * heads_bias[:g_k], heads_bias[time_b] - heads_bias[time_a], heads_bias[time_a]])
    heads_s, heads_b = 2 * heads_w.t(), heads_b - heads_w.sum(1)
    if ts is None:
        heads_s, heads_b = heads_s[:, : 3 * hidden], heads_b[: 3 * hidden]
    late = None if ts is None else (ts - 1).unbind(0)
    s, sig, u = [], [], []  # per step: the backbone's sigmoid (z = 2 s - 1); (g + 1) / 2, (k + 1) / 2, gate; state
    prev = (h0 + 1) / 2
    for t, sensed_t in enumerate(sensed.unbind(0)):
        s.append(torch.addmm(sensed_t, prev, recurrent_u).sigmoid_())
        out = torch.addmm(heads_b, s[-1], heads_s)
        if late is not None:  # the gate's input at a span of ts: time_b - time_a ts
            gate_in = out[:, 2 * hidden : 3 * hidden]
            torch.addcmul(gate_in, out[:, 3 * hidden :], late[t], value=-1, out=gate_in)
            out = out[:, : 3 * hidden]
        sig.append(out.sigmoid_())
        prev = torch.lerp(*sig[-1].split(hidden, dim=1))
        u.append(prev)
    s, sig, u = torch.stack(s), torch.stack(sig), torch.stack(u)
    z, gk, states = (a.mul(2).sub_(1) for a in (s, sig[..., : 2 * hidden], u))
    return x, h0, ts, weight, heads_weight, z, gk, sig[..., 2 * hidden :], states


def backward(saved: tuple, d_states: torch.Tensor, input_grad: bool = False) -> tuple:
    """Gradients with respect to x (None unless `input_grad`), h0, weight, bias, heads_weight and heads_bias, from
    those with respect to the states."""
    x, h0, ts, weight, heads_weight, z, gk, gate, states = saved
    steps, batch, hidden = states.shape
    inputs = x.shape[2]
    g, k = gk.chunk(2, dim=-1)
    # how each step's state moves with its heads' outputs (g, k, time_a, time_b), all steps at once
    d_gate = (k - g) * gate * (1 - gate)
    d_time_a = -d_gate if ts is None else -d_gate * ts
    local = torch.cat([(1 - gate) * (1 - g * g), gate * (1 - k * k), d_time_a, d_gate], dim=-1)
    local = local.view(steps, batch, 4, hidden).unbind(0)
    d_z = (1 - z * z).unbind(0)
    recurrent = weight[:, inputs:]
    d_heads, d_backbone = [], []  # per step, newest first; the backbone's before its tanh
    d_h = d_states[-1]
    for t in reversed(range(steps)):
        d_heads.append((local[t] * d_h.unsqueeze(1)).view(batch, -1))
        d_backbone.append(torch.mm(d_heads[-1], heads_weight).mul_(d_z[t]))
        d_h = torch.addmm(d_states[t - 1], d_backbone[-1], recurrent) if t else d_backbone[-1] @ recurrent
    d_heads, d_backbone = torch.cat(d_heads[::-1]), torch.cat(d_backbone[::-1])  # (steps x batch) rows
    backbone_in = torch.cat([x, torch.cat([h0[None], states[:-1]])], dim=-1).view(steps * batch, -1)
    d_x = (d_backbone @ weight[:, :inputs]).view_as(x) if input_grad else None
    return (d_x, d_h, d_backbone.t() @ backbone_in, d_backbone.sum(0), d_heads.t() @ z.view(steps * batch, -1),
            d_heads.sum(0))


class CfCWindow(torch.autograd.Function):
    """`forward` and `backward` as an autograd function of (x, h0, ts, weight, bias, heads_weight, heads_bias)."""

    @staticmethod
    def forward(ctx, x, h0, ts, weight, bias, heads_weight, heads_bias):
        saved = forward(x, h0, ts, weight, bias, heads_weight, heads_bias)
        ctx.save_for_backward(*saved)
        return saved[-1]

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, d_states):
        d_x, d_h0, *d_weights = backward(ctx.saved_tensors, d_states, ctx.needs_input_grad[0])
        return d_x, d_h0, None, *d_weights
