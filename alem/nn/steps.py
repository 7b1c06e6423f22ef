"""One optimisation step, the same rule for pre-training and fine-tuning."""

from __future__ import annotations

import torch

#: Gradients are clipped to this global norm before every step (a bad batch early in a one-cycle
#: warm-up would otherwise throw the weights far off).
MAX_GRAD_NORM = 5.0


def gradient_step(
    loss: torch.Tensor,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
) -> None:
    """Back-propagate ``loss`` (a scalar), clip the gradients of ``model``, step the optimiser and
    then the learning-rate schedule."""
    optimizer.zero_grad()
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), MAX_GRAD_NORM)
    optimizer.step()
    scheduler.step()
