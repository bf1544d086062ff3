"""The shared Bradley-Terry training loop for every feature reward model.

Loss per step on a minibatch B of pairs (design section 3.1):

    L = mean_{(u, y_w, y_l) in B} -log sigmoid(r_u(x, y_w) - r_u(x, y_l)) + extra(step)

where ``extra`` is the method's own term (e.g. VPL's annealed KL). Adam with the method's
parameter groups (``rm._param_groups()`` when defined), a fixed step budget, and early stopping:
every ``eval_every`` steps the validation BT loss is computed; after ``patience`` checks without
improvement training stops and the best state is restored.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm


@torch.no_grad()
def _val_stats(rm, val) -> tuple[float, float]:
    rm.module_.eval()
    m = rm._margin(val, torch.arange(len(val)), step=-1)
    rm.module_.train()
    acc = ((m > 0).float() + 0.5 * (m == 0).float()).mean().item()
    return float(-F.logsigmoid(m).mean().item()), acc


def train_bradley_terry(rm, train, val, cfg, progress: bool = False) -> dict:
    """Fit ``rm.module_`` in place; return a log dict (steps, best step, losses, accuracies)."""
    module = rm.module_
    module.train()
    groups = rm._param_groups() if hasattr(rm, "_param_groups") else [{"params": list(module.parameters())}]
    opt = torch.optim.Adam(groups, lr=cfg.lr, weight_decay=cfg.weight_decay)
    gen = torch.Generator().manual_seed(cfg.seed)
    n = len(train)
    bs = min(cfg.batch_size, n)
    perm, pos = torch.randperm(n, generator=gen), 0
    best = {"val_loss": float("inf"), "step": 0, "state": None, "val_acc": float("nan")}
    bad, loss_v, step = 0, float("nan"), 0
    for step in tqdm(range(1, cfg.steps + 1), desc=f"fit {rm.method}", disable=not progress, leave=False):
        if pos + bs > n:
            perm, pos = torch.randperm(n, generator=gen), 0
        idx = perm[pos : pos + bs]
        pos += bs
        margin = rm._margin(train, idx, step)
        loss = -F.logsigmoid(margin).mean() + rm._extra_loss(step)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        loss_v = float(loss.item())
        if val is not None and (step % cfg.eval_every == 0 or step == cfg.steps):
            vl, va = _val_stats(rm, val)
            if vl < best["val_loss"] - 1e-6:
                best.update(val_loss=vl, val_acc=va, step=step, state=copy.deepcopy(module.state_dict()))
                bad = 0
            else:
                bad += 1
                if bad >= cfg.patience:
                    break
    if best["state"] is not None:
        module.load_state_dict(best["state"])
    module.eval()
    log = {"steps_run": step, "final_train_loss": loss_v, "n_train_pairs": n}
    if val is not None:
        log.update(
            best_step=best["step"],
            best_val_loss=best["val_loss"],
            best_val_acc=best["val_acc"],
            n_val_pairs=len(val),
        )
    return log
