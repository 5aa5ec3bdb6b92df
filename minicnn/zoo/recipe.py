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

``airbench_muon_optimizer`` and its helpers below are the airbench94_muon variant
(same repository, airbench94_muon.py): Muon for the conv filters, SGD for the rest,
the lr falling linearly from the first step to 0, no lookahead. The rest of that
recipe is the "fast94" preset of examples/train_cifar10.py: 8 epochs at batch
2000, label smoothing 0.2, alternating flips, 2-pixel reflect-padded translations,
test-time augmentation level 2 (flip and 1-pixel shifts).
"""
from ..nn import Dense
from ..optim import SGD, Chain, Lookahead, Muon
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
    then stops: its group's lr_scale becomes 0 and the param joins its layer's ``frozen``
    set, so no layer below the first conv has anything left to train and the backward
    pass stops above them (Sequential.set_input_grads). Its gradient is zeroed then, so
    an optimizer that still reads it (momentum, weight decay at lr 0) sees the same
    numbers whether the run was resumed or not."""
    def hook(trainer, epoch):
        model, frozen_now = trainer.model, epoch >= epochs
        roles = model.roles()
        for group in trainer.optimizer.param_groups:
            if any(roles.get(item[0]) == "whitening_bias" for item in group["params"]):
                group["lr_scale"] = 0.0 if frozen_now else 1.0
        for name, role in roles.items():
            if role == "whitening_bias":
                index, key = name.split(".")
                layer = model.layers[int(index)]
                if frozen_now:
                    layer.frozen.add(key)
                    layer.grads[key][...] = 0
                else:
                    layer.frozen.discard(key)
    return hook


def airbench_schedule(total_steps, warmup=0.23, start=0.2, final=0.07):
    return warmup_linear(total_steps, int(total_steps * warmup), start=start, final=final)


def airbench_lookahead(model, total_steps, every=5):
    """Lookahead over all weights and BatchNorm statistics, and its decay schedule."""
    la = Lookahead(list(model.named_arrays()), alpha=1.0, k=every)

    def decay(step):
        return 0.95 ** every * (step / total_steps) ** 3
    return la, decay


# -- airbench94_muon ---------------------------------------------------------------------
def airbench_muon_optimizer(model, batch_size, filter_lr=0.24, filter_momentum=0.6, ns_steps=3,
                            bias_lr=0.053, head_lr=0.67, momentum=0.85, weight_decay=2e-6):
    """The optimizers of airbench94_muon (Keller Jordan, github.com/KellerJordan/cifar10-airbench,
    airbench94_muon.py: 94.01% mean test accuracy in 8 epochs at batch 2000), as one ``Chain``.

    Muon, for the conv filters (every trainable 4-D param; the frozen whitening filters
    are not trainable):
        filter_lr = 0.24, filter_momentum = 0.6, Nesterov, ns_steps = 3 Newton-Schulz
        steps, normalize_weights=True (each step first rescales a filter bank W (.., F)
        to ||W||_F = sqrt(F)), no weight decay.
    Nesterov SGD (momentum = 0.85), in three groups:
        BatchNorm params (role "norm_shift"/"norm_scale") and the whitening bias (role
        "whitening_bias"): lr bias_lr = 0.053;  the head (the final Dense): head_lr = 0.67.
        PyTorch-style L2 decay: coefficient weight_decay * B / lr with weight_decay = 2e-6.

    airbench94_muon sums its loss over the batch of B images; minicnn's loss is the
    mean (gradients B times smaller). The same SGD updates come from

        lr  = lr_sum * B                        (bias: 0.053 * 2000 = 106)
        L2  = weight_decay / lr_sum             (bias: 2e-6 / 0.053 = 3.77e-5; any B)

    Muon needs no conversion: its step does not depend on the gradient's scale.

    The head. airbench94_muon computes ``logits = (x @ W) / w3`` (w3 = the head's input
    width) with W started at unit std; minicnn's airbench head computes ``s * (x @ W)``
    with s = ``head.scale`` (1/9). Both train the same product ``E = s * W``: SGD on W
    with lr and L2 moves E like SGD with lr * s**2 and L2 / s**2. So the head gets

        lr  = head_lr * B * (s_o / s)**2,   L2 = weight_decay / head_lr * (s / s_o)**2,   s_o = 1/w3

    (B = 2000, w3 = 256: lr 1.66, L2 2.42e-3), and ``airbench_muon_head_init`` starts
    E where airbench94_muon starts it.

    Every trainable param must be a filter, a BatchNorm param, the whitening bias or
    the head's weight; anything else raises ValueError (the recipe is for the airbench
    net). Returns ``Chain([sgd, muon])``; the SGD groups are (norm, whitening bias, head).
    """
    head = model.layers[-1]
    if not isinstance(head, Dense) or head.use_bias:
        raise ValueError(f"airbench_muon_optimizer: expected the airbench net, whose last "
                         f"layer is a Dense without bias (the head), got {head!r}")
    head_scale, original_scale = head.scale, 1.0 / head.D
    head_W = head.params["W"]
    roles = model.roles()
    filters, norm, whiten_bias, head_params = [], [], [], []
    for name, p, g in model.named_parameters():
        if p.ndim == 4:
            filters.append((name, p, g))
        elif roles[name] in ("norm_shift", "norm_scale"):
            norm.append((name, p, g))
        elif roles[name] == "whitening_bias":
            whiten_bias.append((name, p, g))
        elif p is head_W:
            head_params.append((name, p, g))
        else:
            raise ValueError(f"airbench_muon_optimizer: param {name!r} (role {roles[name]!r}, "
                             f"shape {p.shape}) is not a conv filter, a BatchNorm param, the "
                             f"whitening bias or the head: this recipe is for the airbench net")
    bias_l2 = weight_decay / bias_lr
    head_ratio = (original_scale / head_scale) ** 2
    groups = [{"params": norm, "lr": bias_lr * batch_size, "weight_decay": bias_l2},
              {"params": whiten_bias, "lr": bias_lr * batch_size, "weight_decay": bias_l2},
              {"params": head_params, "lr": head_lr * batch_size * head_ratio,
               "weight_decay": weight_decay / head_lr / head_ratio}]
    sgd = SGD([g for g in groups if g["params"]], lr=bias_lr * batch_size, momentum=momentum,
              nesterov=True)
    muon = Muon(filters, lr=filter_lr, momentum=filter_momentum, nesterov=True,
                ns_steps=ns_steps, normalize_weights=True)
    return Chain([sgd, muon])


def airbench_muon_head_init(model):
    """Start the head where airbench94_muon starts it: W at unit std under the output
    scale 1/w3, i.e. the product ``E = scale * W`` at std 1/w3. minicnn's head keeps its
    own scale, so W is rescaled (in place) to std 1 / (w3 * scale)."""
    head = model.layers[-1]
    W = head.params["W"]
    W *= (1.0 / (head.D * head.scale)) / float(W.std())


def airbench_muon_schedule(total_steps):
    """airbench94_muon's schedule: factor(s) = 1 - s / total_steps, from 1 at step 0
    straight down to 0 (no warmup), for every lr.

    Only the whitening bias differs there: its lr falls to 0 over the first 3 epochs,
    then it stops. The Trainer sets one factor for all groups, so use
    ``freeze_whiten_bias(3)`` with this schedule: the bias follows the common factor
    for 3 epochs, then stops."""
    return warmup_linear(total_steps, 0, final=0.0)
