"""Ready-made networks for CIFAR-10 and the airbench94 training recipe.

    nets.py       simple (a small VGG-style net) and airbench (Keller Jordan's airbench94)
    whitening.py  the frozen patch-whitening first layer of airbench
    recipe.py     airbench's optimizer groups, learning rates, schedule and lookahead;
                  airbench94_muon's Muon + SGD optimizers and schedule
"""
from .nets import MODELS, airbench, dirac_init, simple
from .recipe import (airbench_lookahead, airbench_lr, airbench_muon_head_init,
                     airbench_muon_optimizer, airbench_muon_schedule, airbench_optimizer,
                     airbench_schedule, freeze_whiten_bias)
from .whitening import patches, whitening_weights
