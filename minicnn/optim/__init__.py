"""Optimizers, learning-rate schedules and weight averaging.

    opt = SGD(param_groups_no_decay(model.named_parameters()), lr=0.1,
              momentum=0.9, nesterov=True, weight_decay=5e-4)
    schedule = warmup_linear(total_steps, warmup_steps=total_steps // 5)
    opt.set_lr_factor(schedule(step)); ...; opt.step()

Muon (muon.py) orthogonalises the step of each weight matrix; it takes matrices only,
so it is combined with SGD for the other params: ``Chain([sgd, muon])``.
"""
from .adam import Adam, AdamW
from .base import Optimizer, is_bias_or_norm, param_groups_no_decay, split_param_groups
from .ema import EMA, Lookahead
from .muon import Chain, Muon, newton_schulz
from .schedules import constant, cosine, step_decay, warmup_cosine, warmup_linear
from .sgd import SGD

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "Muon", "Chain", "newton_schulz",
           "param_groups_no_decay", "split_param_groups", "is_bias_or_norm", "EMA", "Lookahead",
           "constant", "step_decay", "cosine", "warmup_linear", "warmup_cosine"]
