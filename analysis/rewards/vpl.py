"""VPL: variational preference learning with a user latent (Poddar et al. 2024, "Personalizing
Reinforcement Learning from Human Feedback with Variational Preference Learning").

Encoder (from a set C_u of the user's labelled context pairs, features standardized):

    e_j = MLP_enc([phi(x_j, y_w,j) ; phi(x_j, y_l,j)])          (C, D)   pair embeddings
    a = softmax_j(e_j . q / sqrt(D));  h = sum_j a_j e_j          attention pooling
    q(z | C_u) = N(mu(h), diag exp(logvar(h)))                   z in R^Z

Decoder: ``r_u(x, y) = MLP_dec([phi(x, y) ; z_u])``.

Loss: Bradley-Terry on the batch with ``z ~ q(z | C_u)`` (reparameterised; a fresh random
context of ``context_size`` train pairs per user and step) plus
``beta(step) * KL(q(z | C_u) || N(0, I))`` averaged over the batch's users, with ``beta``
annealed linearly from 0 to ``kl_weight`` over ``kl_anneal_steps`` (reference: latent 512,
KL weight ~3e-6 with annealing; latent 16-64 at embedded scale). At test time ``z_u`` is the
posterior mean from the user's training pairs (up to ``max_context``).
Posterior collapse (the decoder ignoring z) is logged in ``fit_log_``: ``kl`` and
``user_reward_spread`` (std over users of the reward of the same responses).
Unknown users (fallback): the mean of the known users' posterior means; or infer a latent
from their own labelled pairs with :meth:`VPL.infer_latent`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from analysis.errors import ConfigError
from analysis.rewards.base import PairTensors, RewardModel, RMConfig, gather_user_param


@dataclass
class VPLConfig(RMConfig):
    """RMConfig plus: ``latent_dim`` Z, ``hidden`` D, ``kl_weight`` (final beta),
    ``kl_anneal_steps``, ``context_size`` (pairs sampled per user per step), ``max_context``
    (pairs used for the test-time posterior mean)."""

    latent_dim: int = 16
    hidden: int = 64
    kl_weight: float = 1e-3
    kl_anneal_steps: int = 200
    context_size: int = 16
    max_context: int = 64
    lr: float = 3e-3

    def validate(self) -> None:
        super().validate()
        if min(self.latent_dim, self.hidden, self.context_size, self.max_context) < 1 or self.kl_weight < 0:
            raise ConfigError("latent_dim, hidden, context_size, max_context must be >= 1 and kl_weight >= 0")


class _VPL(torch.nn.Module):
    def __init__(self, dim: int, n_users: int, cfg: VPLConfig):
        super().__init__()
        D, Z = cfg.hidden, cfg.latent_dim
        self.enc = torch.nn.Sequential(torch.nn.Linear(2 * dim, D), torch.nn.GELU(), torch.nn.Linear(D, D))
        self.query = torch.nn.Parameter(torch.randn(D) / D**0.5)
        self.mu = torch.nn.Linear(D, Z)
        self.logvar = torch.nn.Linear(D, Z)
        self.dec = torch.nn.Sequential(torch.nn.Linear(dim + Z, D), torch.nn.GELU(), torch.nn.Linear(D, 1))
        self.register_buffer("z_mean", torch.zeros(n_users, Z))

    def posterior(self, xc: torch.Tensor, xr: torch.Tensor, mask: torch.Tensor | None = None):
        """xc, xr: (G, C, H) context pairs (mask (G, C) True = real) -> mu, logvar (G, Z)."""
        e = self.enc(torch.cat([xc, xr], dim=-1))  # (G, C, D)
        att = (e @ self.query) / e.shape[-1] ** 0.5  # (G, C)
        if mask is not None:
            att = att.masked_fill(~mask, float("-inf"))
        h = (att.softmax(-1).unsqueeze(-1) * e).sum(1)  # (G, D)
        return self.mu(h), self.logvar(h).clamp(-8.0, 8.0)

    def decode(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return self.dec(torch.cat([x, z], dim=-1)).squeeze(-1)  # (N,)


class VPL(RewardModel):
    """``r_u = MLP([phi ; z_u])`` with a variational user latent from context pairs."""

    method = "vpl"
    config_cls = VPLConfig
    paper = "Poddar et al. 2024, Personalizing RLHF with Variational Preference Learning"

    def _build(self, dim: int, n_users: int) -> torch.nn.Module:
        return _VPL(dim, n_users, self.config)

    def _setup(self, train: PairTensors) -> None:
        # the training pairs standardized once (buffers are set before _setup), gathered per step
        self._std_pairs = (self._standardize(train.chosen), self._standardize(train.rejected))
        rows = [torch.nonzero(train.uidx == u).flatten() for u in range(len(self.users_))]
        width = max(1, max(len(r) for r in rows))
        self._table = torch.zeros(len(rows), width, dtype=torch.long)  # (U, W): each user's train rows
        self._count = torch.tensor([len(r) for r in rows])  # (U,)
        for u, r in enumerate(rows):
            self._table[u, : len(r)] = r
        self._gen = torch.Generator().manual_seed(self.config.seed + 1)
        self._kl = torch.zeros(())

    def _context(self, users: torch.Tensor, sample: bool):
        """Stack context pairs for each user in ``users`` (G,): (G, C, H) x2 and mask (G, C).

        Sampling draws ``context_size`` of each user's train pairs without replacement (the order
        of uniform random keys); otherwise the first ``max_context`` pairs."""
        C = self.config.context_size if sample else self.config.max_context
        table, count = self._table[users], self._count[users]  # (G, W), (G,)
        slot = torch.arange(table.shape[1])
        if sample:  # random keys; empty slots sort last
            keys = torch.rand(table.shape, generator=self._gen).masked_fill(slot >= count[:, None], 2.0)
            order = keys.argsort(dim=1)[:, :C]
        else:
            order = slot[:C].expand(len(users), -1)
        idx = table.gather(1, order)  # (G, C) rows of the train pairs
        mask = order < count[:, None]
        keep = mask[..., None]
        xc, xr = (torch.where(keep, x[idx], 0.0) for x in self._std_pairs)
        return xc, xr, mask

    def _margin(self, data: PairTensors, idx: torch.Tensor, step: int) -> torch.Tensor:
        if step < 0:  # evaluation: posterior means, fallback for unknown users
            self._refresh_latents()
            return super()._margin(data, idx, step)
        u = data.uidx[idx]  # training users are all known
        users, inv = torch.unique(u, return_inverse=True)
        mu, logvar = self.module_.posterior(*self._context(users, sample=True))
        z = mu + torch.randn(mu.shape, generator=self._gen) * (0.5 * logvar).exp()  # (G, Z)
        self._kl = 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).sum(-1).mean()
        zb = z[inv]  # (B, Z)
        m = self.module_
        return m.decode(self._standardize(data.chosen[idx]), zb) - m.decode(
            self._standardize(data.rejected[idx]), zb
        )

    def _extra_loss(self, step: int):
        beta = self.config.kl_weight * min(1.0, step / max(1, self.config.kl_anneal_steps))
        return beta * self._kl

    @torch.no_grad()
    def _refresh_latents(self) -> None:
        users = torch.arange(len(self.users_))
        mu, _ = self.module_.posterior(*self._context(users, sample=False))
        self.module_.z_mean.copy_(mu)

    def _after_fit(self, train: PairTensors) -> None:
        self._refresh_latents()
        with torch.no_grad():
            mu, logvar = self.module_.posterior(*self._context(torch.arange(len(self.users_)), sample=False))
            kl = 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).sum(-1).mean()
            x = self._standardize(train.chosen[:256])
            r = torch.stack(
                [self.module_.decode(x, z.expand(len(x), -1)) for z in self.module_.z_mean]
            )  # (U, n)
        self.fit_log_.update(kl=float(kl), user_reward_spread=float(r.std(0).mean()) if len(r) > 1 else 0.0)
        del self._std_pairs, self._table, self._count, self._gen

    def _score(self, uidx: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        zm = self.module_.z_mean
        return self.module_.decode(x, gather_user_param(zm, uidx, zm.mean(0)))

    @torch.no_grad()
    def infer_latent(self, chosen: torch.Tensor, rejected: torch.Tensor) -> torch.Tensor:
        """Posterior mean z (Z,) for a new user from their labelled pairs' features (C, H) each."""
        self._check_fitted()
        mu, _ = self.module_.posterior(
            self._standardize(chosen.float())[None], self._standardize(rejected.float())[None]
        )
        return mu[0]

    @torch.no_grad()
    def reward_with_latent(self, z: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
        """r(x, y) for a given latent z (Z,) and features (N, H) -> (N,)."""
        x = self._standardize(features.float())
        return self.module_.decode(x, z.to(x.device).expand(len(x), -1))
