"""``AdamWTF``: RecIS's TF-style AdamW for dense parameters.

Per step: ``p *= 1 - weight_decay`` (not scaled by lr), then Adam with epsilon outside the bias
correction: ``p -= lr·sqrt(1-β2^t)/(1-β1^t) · m / (sqrt(v) + eps)``. The same rule as
:class:`~recis.optim.SparseAdamWTF`, for ``nn.Parameter`` s.

>>> import torch
>>> p = torch.nn.Parameter(torch.ones(2))
>>> optimizer = AdamWTF([p], lr=0.1, weight_decay=0.0)
>>> p.sum().backward(); optimizer.step()
>>> [round(v, 4) for v in p.tolist()]
[0.9, 0.9]
"""

from __future__ import annotations

import math

import torch


class AdamWTF(torch.optim.Optimizer):
    """TF-style AdamW (see the module docstring). ``fuse`` is accepted for RecIS compatibility."""

    def __init__(
        self,
        params,
        lr=1e-3,
        betas=(0.9, 0.999),
        eps=1e-8,
        weight_decay=1e-2,
        use_nesterov=False,
        maximize=False,
        fuse=True,
    ):
        if use_nesterov:
            raise ValueError("AdamWTF: use_nesterov=True is not supported")
        if not 0.0 <= weight_decay < 1.0:
            raise ValueError(f"AdamWTF: weight_decay must be in [0, 1), got {weight_decay}")
        defaults = {
            "lr": lr,
            "betas": betas,
            "eps": eps,
            "weight_decay": weight_decay,
            "maximize": maximize,
        }
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                grad = -p.grad if group["maximize"] else p.grad
                state = self.state[p]
                if not state:
                    state["step"] = 0
                    state["exp_avg"] = torch.zeros_like(p)
                    state["exp_avg_sq"] = torch.zeros_like(p)
                state["step"] += 1
                t = state["step"]
                p.mul_(1 - group["weight_decay"])
                state["exp_avg"].mul_(beta1).add_(grad, alpha=1 - beta1)
                state["exp_avg_sq"].mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
                step_size = group["lr"] * math.sqrt(1 - beta2**t) / (1 - beta1**t)
                denom = state["exp_avg_sq"].sqrt().add_(group["eps"])
                p.addcdiv_(state["exp_avg"], denom, value=-step_size)
        return loss
