"""The airbench94 training recipe as reusable pieces (Keller Jordan, 2024,
github.com/KellerJordan/cifar10-airbench, airbench94.py).

airbench states its hyperparameters for a loss SUMMED over a batch of B images,
per 1024 images, with Nesterov SGD (momentum mu = 0.85):

    kilostep_scale = 1024 * (1 + 1 / (1 - mu))
    lr_sum = 11.5 / kilostep_scale,   L2 coefficient = 0.0153 * B / 11.5   (PyTorch weight_decay)
    BatchNorm shifts: lr x 64, L2 coefficient / 64 (the same decay per step)

minicnn's losses are MEANS over the batch (gradient B times smaller), so the same
updates come from

    lr   = 11.5 * B / kilostep_scale          (B = 1024: 1.50;  B = 512: 0.75)
    L2   = 0.0153 / 11.5 = 1.33e-3            (independent of B)

Schedule: linear warmup from 0.2 to 1 over the first 23% of steps, then linear
decay to 0.07. Lookahead every 5 steps with decay 0.95**5 * (step / total)**3.
The whitening layer's bias trains for the first 3 epochs only.
"""
from ..optim import SGD, Lookahead
from ..optim.schedules import warmup_linear


def airbench_lr(batch_size, lr=11.5, momentum=0.85):
    return lr * batch_size / (1024 * (1 + 1 / (1 - momentum)))


def airbench_optimizer(model, batch_size, lr_scale=1.0, momentum=0.85, lr=11.5,
                       weight_decay=0.0153, bias_scaler=64.0):
    """Nesterov SGD with airbench's three groups, chosen by the params' roles: BatchNorm
    parameters (role "norm_shift", or "norm_scale" when trained; 64x lr), the whitening
    bias (role "whitening_bias", frozen later by ``freeze_whiten_bias``), the rest."""
    base_lr = airbench_lr(batch_size, lr, momentum) * lr_scale
    l2 = weight_decay / lr
    roles = model.roles()
    norm, whiten_bias, rest = [], [], []
    for name, p, g in model.named_parameters():
        if roles[name] in ("norm_shift", "norm_scale"):
            norm.append((name, p, g))
        elif roles[name] == "whitening_bias":
            whiten_bias.append((name, p, g))
        else:
            rest.append((name, p, g))
    groups = [{"params": norm, "lr_scale": bias_scaler, "weight_decay": l2 / bias_scaler},
              {"params": whiten_bias, "weight_decay": l2},
              {"params": rest, "weight_decay": l2}]
    groups = [g for g in groups if g["params"]]
    return SGD(groups, lr=base_lr, momentum=momentum, nesterov=True)


def freeze_whiten_bias(epochs=3):
    """Epoch hook: the whitening bias (role "whitening_bias") trains for ``epochs`` epochs,
    then stops."""
    def hook(trainer, epoch):
        roles = trainer.model.roles()
        for group in trainer.optimizer.param_groups:
            if any(roles.get(item[0]) == "whitening_bias" for item in group["params"]):
                group["lr_scale"] = 1.0 if epoch < epochs else 0.0
    return hook


def airbench_schedule(total_steps, warmup=0.23, start=0.2, final=0.07):
    return warmup_linear(total_steps, int(total_steps * warmup), start=start, final=final)


def airbench_lookahead(model, total_steps, every=5):
    """Lookahead over all weights and BatchNorm statistics, and its decay schedule."""
    la = Lookahead(list(model.named_arrays()), alpha=1.0, k=every)

    def decay(step):
        return 0.95 ** every * (step / total_steps) ** 3
    return la, decay
