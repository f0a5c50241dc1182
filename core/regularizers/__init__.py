"""Regularisers: penalties added to a loss (gradient-norm penalties; WEISSI joins later)."""

from core.regularizers.gradient_penalty import (
    egr_grads,
    egr_loss,
    full_batch_grad,
    grad_norm_sq,
    matching_mu,
    minibatch_modified_loss,
    modified_loss,
    penalty_grad_fd,
)

__all__ = [
    "egr_grads",
    "egr_loss",
    "full_batch_grad",
    "grad_norm_sq",
    "matching_mu",
    "minibatch_modified_loss",
    "modified_loss",
    "penalty_grad_fd",
]
