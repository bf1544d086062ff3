"""The reward-model interface shared by every method (design section 3.1).

Estimator contract (scikit-learn style): ``__init__`` stores the config and nothing else;
:meth:`RewardModel.fit` learns state whose names end in ``_`` and returns ``self``; rewards are
computed by :meth:`RewardModel.reward` (features) or :meth:`RewardModel.reward_text` (text);
:meth:`RewardModel.save` writes a folder with ``config.json`` + ``model.safetensors`` (never
pickle) and :meth:`RewardModel.load` reads it back.

Feature methods standardize features with the training mean / std (stored with the model, so
decoding-time features get the same transform) and train with the Bradley-Terry loss
``-log sigmoid(r_u(x, y_w) - r_u(x, y_l))`` plus their own terms (:mod:`analysis.rewards.train`).

Unknown users (no training pairs) never get NaN: with ``unknown_user="fallback"`` (default) each
method documents its fallback (the population mean of the per-user parameters); with
``unknown_user="error"`` a :class:`~analysis.data.records.DataError` names them.

Fitting runs on :data:`TRAIN_THREADS` CPU threads whatever the process's torch setting: with two
threads some backward reductions are split differently (shared_bt and vpl then differ in the last
bits), so an RM would depend on ``cfg.threads`` or on the report's thread schedule
(:mod:`analysis.report.schedule`). One thread is also no slower here: the steps are small.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import ClassVar

import torch

from analysis.data.records import DataError
from analysis.errors import ConfigError, lookup
from analysis.features.passes import BackboneSpec, PairFeatures
from analysis.io import atomic_open, read_json, write_json

FORMAT_VERSION = 1
UNKNOWN_USER = ("fallback", "error")
REWARD_NORMS = ("prefix", "response")  # what the reward centre and scale are fitted on

TRAIN_THREADS = 1  # CPU threads of every fit (see the module docstring)


@contextlib.contextmanager
def training_threads(n: int | None = None):
    """Run the enclosed block on ``n`` (default :data:`TRAIN_THREADS`) torch CPU threads, restoring
    the previous setting after."""
    n = TRAIN_THREADS if n is None else int(n)
    old = torch.get_num_threads()
    if old != n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        if torch.get_num_threads() != old:
            torch.set_num_threads(old)


@dataclass
class RMConfig:
    """Training settings common to all feature methods.

    seed: torch seed for init, batches and latent samples.
    steps: optimizer step budget (max; early stopping may end sooner).
    lr: Adam learning rate. weight_decay: Adam L2 on all parameters.
    batch_size: pairs per step (full batch when larger than the data).
    eval_every: steps between validation checks; patience: checks without improvement before
        stopping (the best validation-loss state is restored).
    standardize: z-score features with the training mean / std.
    normalize_reward: divide rewards by their standard deviation over the training responses, so
        that the RGD weight w means "reward standard deviations per token" for every method and
        seed (a Bradley-Terry head's scale is arbitrary and grows on separable data). It is a
        positive constant, so RM accuracy is unchanged. With ``center_reward`` the std is taken of
        the centred rewards (so it, too, ignores per-user offsets).
    center_reward: subtract each user's mean reward over their training responses (unknown users:
        the mean of the users' centres).
        Both statistics are taken over the full training responses, or, when
        :meth:`RewardModel.fit` gets ``prefixes`` (:class:`PrefixRows`), over every prefix
        ``y_<=t`` of them: ARGS and the ``score`` policy accuracy add ``w * r_u(x, y_<=t)`` at
        every step, so only prefix statistics give w the same meaning for every method and
        budget (an RM whose prefix rewards spread more than its full-response rewards would
        otherwise get a larger effective w). ``fit_log_["reward_norm"]`` (saved with the model)
        says which: ``prefix`` or ``response``. Bradley-Terry fixes r_u only up to a per-user constant,
        which the ``score`` policy accuracy would otherwise turn into ``w c (|y_w| - |y_l|)``;
        centred, adding a per-user constant to an RM changes neither policy accuracy nor ARGS.
        A per-user constant, so RM accuracy is unchanged. Together with ``normalize_reward`` this
        is a documented deviation from plain ARGS (raw RM scores; README, design 3.2).
    unknown_user: "fallback" (documented per method) or "error".
    """

    seed: int = 0
    steps: int = 600
    lr: float = 1e-2
    weight_decay: float = 0.0
    batch_size: int = 128
    eval_every: int = 20
    patience: int = 10
    standardize: bool = True
    normalize_reward: bool = True
    center_reward: bool = True
    unknown_user: str = "fallback"

    def validate(self) -> None:
        if self.steps < 1 or self.batch_size < 1 or self.eval_every < 1 or self.patience < 1:
            raise ConfigError("steps, batch_size, eval_every and patience must be >= 1")
        if self.lr <= 0:
            raise ConfigError(f"lr must be > 0, got {self.lr}")
        lookup(UNKNOWN_USER, self.unknown_user, "value", prefix="unknown_user: ")


@dataclass
class PairTensors:
    """Training view of :class:`PairFeatures`: user index (N,) (-1 = unknown), chosen / rejected (N, H)."""

    uidx: torch.Tensor
    chosen: torch.Tensor
    rejected: torch.Tensor

    def __len__(self) -> int:
        return int(self.uidx.shape[0])


@dataclass
class PrefixRows:
    """RM inputs of every prefix ``y_<=t`` (t = 1..|y|) of a set of responses, one row each:
    ``user_ids`` (M,) and ``feats`` (M, H) = phi(x, y_<=t). What ARGS and the ``score`` policy
    accuracy score; :meth:`RewardModel.fit_reward_normalisation` fits the reward centre and scale
    on them (e.g. from :func:`analysis.evaluation.policy_accuracy.prefix_rows`)."""

    user_ids: list[str]
    feats: torch.Tensor

    def __len__(self) -> int:
        return int(self.feats.shape[0])


class RewardModel:
    """Base class. Subclasses set ``method``, ``input_kind``, ``config_cls`` and implement
    ``_build(dim, n_users) -> nn.Module`` and ``_score(uidx, x) -> (N,)`` (x standardized;
    ``uidx == -1`` marks unknown users, which must get the fallback). Optional hooks:
    ``_extra_loss(step) -> scalar`` and ``_setup(train)`` / ``_after_fit(train)``.
    """

    method: ClassVar[str] = ""
    input_kind: ClassVar[str] = "features"
    config_cls: ClassVar[type] = RMConfig
    paper: ClassVar[str] = ""

    def __init__(self, config=None, **kwargs):
        if config is not None and kwargs:
            raise TypeError("pass either config or keyword settings, not both")
        if config is None:
            known = sorted(f.name for f in fields(self.config_cls))
            for key in sorted(kwargs):
                lookup(known, key, "setting", prefix=f"{self.method}: ")
            config = self.config_cls(**kwargs)
        self.config = config
        self.backbone: BackboneSpec | None = None
        self.featurizer = None

    # ------------------------------------------------------------------ public API
    def fit(
        self, train: PairFeatures, val: PairFeatures | None = None, prefixes: PrefixRows | None = None
    ) -> RewardModel:
        """Train on ``train`` pairs (early stopping on ``val`` when given); returns ``self``.
        ``prefixes``: the prefixes of the training responses, for the reward normalisation
        (:meth:`fit_reward_normalisation`)."""
        from analysis.rewards.train import train_bradley_terry

        with training_threads():
            tr, va = self._prepare_fit(train, val)
            self.fit_log_ = train_bradley_terry(self, tr, va, self.config)
            return self._finish_fit(tr, train, prefixes)

    def fit_budgets(
        self,
        train: PairFeatures,
        val: PairFeatures | None,
        budgets: Sequence[int],
        prefixes: PrefixRows | None = None,
    ) -> dict[int, RewardModel]:
        """``{budget: model}``: the models :meth:`fit` would give with ``steps = budget``, for every
        budget, from ONE training run of ``max(budgets)`` steps (a shorter run is a prefix of a
        longer one; :func:`analysis.rewards.train.train_bradley_terry_budgets`). Identical to
        separate fits (tested bit for bit) at the cost of the longest. Afterwards ``self`` is only a
        template (its module holds the longest run's last state): use the returned models."""
        import copy
        import dataclasses

        from analysis.rewards.train import train_bradley_terry_budgets

        budgets = sorted({int(b) for b in budgets})
        self.config = dataclasses.replace(self.config, steps=budgets[-1])
        with training_threads():
            tr, va = self._prepare_fit(train, val)
            snaps = train_bradley_terry_budgets(self, tr, va, self.config, budgets)
            out = {}
            for b, (state, log) in snaps.items():
                # training leftovers with a graph (e.g. VPL's last KL term) cannot be deep-copied: detach
                memo = {
                    id(v): v.detach()
                    for v in vars(self).values()
                    if torch.is_tensor(v) and v.grad_fn is not None
                }
                rm = copy.deepcopy(self, memo)
                rm.config = dataclasses.replace(self.config, steps=b)
                if state is not None:
                    rm.module_.load_state_dict(state)
                rm.module_.eval()
                rm.fit_log_ = log
                out[b] = rm._finish_fit(tr, train, prefixes)
        return out

    def _prepare_fit(self, train: PairFeatures, val: PairFeatures | None):
        """Checks, seed, users, the module and its buffers; returns the (train, val) tensors."""
        self.config.validate()
        _check_pairs(train, "train")
        if val is not None and len(val) == 0:
            val = None
        if val is not None:
            _check_pairs(val, "val")
            if val.dim != train.dim:
                raise DataError(f"val features have dim {val.dim}, train {train.dim}")
        torch.manual_seed(self.config.seed)
        self.backbone = train.backbone
        self.users_ = sorted(set(train.user_ids))
        self._index = {u: i for i, u in enumerate(self.users_)}
        self.dim_ = train.dim
        self.module_ = self._build(self.dim_, len(self.users_))
        both = torch.cat([train.chosen, train.rejected]).float()
        mean = both.mean(0) if self.config.standardize else torch.zeros(self.dim_)
        std = (
            both.std(0).clamp(min=1e-6)
            if self.config.standardize and len(both) > 1
            else torch.ones(self.dim_)
        )
        self.module_.register_buffer("feat_mean", mean.contiguous())
        self.module_.register_buffer("feat_std", std.contiguous())
        self.module_.register_buffer("reward_scale", torch.ones(()))
        self.module_.register_buffer("reward_center", torch.zeros(len(self.users_)))
        tr = self._tensors(train)
        self._setup(tr)
        return tr, self._tensors(val) if val is not None else None

    def _finish_fit(
        self, tr: PairTensors, train: PairFeatures, prefixes: PrefixRows | None = None
    ) -> RewardModel:
        self._after_fit(tr)
        self.module_.eval()
        self.fit_reward_normalisation(train, prefixes)
        return self

    @torch.no_grad()
    def fit_reward_normalisation(
        self, train: PairFeatures, prefixes: PrefixRows | None = None
    ) -> RewardModel:
        """Set the per-user centre and the scale of the rewards (see :class:`RMConfig`).

        Without ``prefixes``: over the training responses (chosen + rejected of ``train``). With
        ``prefixes`` (every prefix ``y_<=t`` of the training responses): the centre of each user is
        the mean of their prefix rewards and the scale the std of the centred prefix rewards of the
        known users, i.e. the statistics of exactly what ARGS and the ``score`` policy accuracy add
        up. ``fit_log_["reward_norm"]`` records which (``prefix`` / ``response``).
        Called at the end of :meth:`fit`; call it again after changing the model's parameters.
        """
        if prefixes is None:
            tr = self._tensors(train)
            uidx = torch.cat([tr.uidx, tr.uidx])
            raw = torch.cat(
                [
                    self._score(tr.uidx, self._standardize(tr.chosen)),
                    self._score(tr.uidx, self._standardize(tr.rejected)),
                ]
            ).float()
            basis = "response"
        else:
            if len(prefixes) != len(prefixes.user_ids) or len(prefixes) == 0:
                raise DataError(
                    f"prefix rows are misaligned or empty: {len(prefixes.user_ids)} user ids, "
                    f"{len(prefixes)} feature rows"
                )
            if prefixes.feats.dim() != 2 or prefixes.feats.shape[1] != self.dim_:
                raise DataError(
                    f"prefix features must be (M, {self.dim_}), got {tuple(prefixes.feats.shape)}"
                )
            uidx = self._user_index(prefixes.user_ids, allow_unknown=True)
            chunk = 8192
            raw = torch.cat(
                [
                    self._score(
                        uidx[i : i + chunk], self._standardize(prefixes.feats[i : i + chunk].float())
                    ).float()
                    for i in range(0, len(prefixes), chunk)
                ]
            )
            basis = "prefix"
        center = torch.zeros(len(self.users_))
        if self.config.center_reward:
            center = per_user_mean(raw, uidx, len(self.users_))
        self.module_.reward_center.copy_(center)
        if not hasattr(self, "fit_log_") or self.fit_log_ is None:
            self.fit_log_ = {}
        self.fit_log_["reward_norm"] = basis
        self.fit_log_["reward_norm_rows"] = int(raw.numel())
        if self.config.normalize_reward:
            known = uidx >= 0
            dev = raw - gather_user_param(center, uidx, center.mean())
            dev = dev[known] if bool(known.any()) else dev
            scale = dev.std() if dev.numel() > 1 else dev.abs().mean()
            self.module_.reward_scale.fill_(float(scale) if torch.isfinite(scale) and scale > 1e-8 else 1.0)
            self.fit_log_["reward_scale"] = float(self.module_.reward_scale)
        return self

    @property
    def reward_norm(self) -> str:
        """What the reward centre and scale were fitted on: ``prefix`` or ``response`` (models
        saved before this was recorded: ``response``)."""
        return (getattr(self, "fit_log_", None) or {}).get("reward_norm", "response")

    @torch.no_grad()
    def reward(self, user_ids: Sequence[str], features: torch.Tensor) -> torch.Tensor:
        """r_u(x, y) for each row: user_ids (N,), features (N, H) -> (N,) float32 on features.device."""
        self._check_fitted()
        if features.dim() != 2 or features.shape[1] != self.dim_:
            raise ValueError(f"{self.method}: features must be (N, {self.dim_}), got {tuple(features.shape)}")
        if len(user_ids) != features.shape[0]:
            raise ValueError(f"{len(user_ids)} user ids for {features.shape[0]} feature rows")
        uidx = self._user_index(user_ids).to(features.device)
        self.module_.eval()
        center = self.module_.reward_center.to(features.device)
        raw = self._score(uidx, self._standardize(features.float()))
        return ((raw - gather_user_param(center, uidx, center.mean())) / self.module_.reward_scale).float()

    def reward_text(
        self, user_ids: Sequence[str], prompts: Sequence, responses: Sequence[str]
    ) -> torch.Tensor:
        """Rewards from text through an attached featurizer (see :meth:`attach_featurizer`)."""
        if self.featurizer is None:
            raise ValueError(
                f"{self.method} is a feature RM: call rm.attach_featurizer(TextFeaturizer(...)) to score text"
            )
        feats = self.featurizer(list(prompts), list(responses))
        return self.reward(list(user_ids), feats.to(self.module_.feat_mean.device))

    def attach_featurizer(self, featurizer) -> RewardModel:
        """Attach a :class:`~analysis.features.passes.TextFeaturizer` (its spec should match ``backbone``)."""
        spec = getattr(featurizer, "spec", None)
        if self.backbone is not None and spec is not None and spec.model_id != self.backbone.model_id:
            raise ValueError(
                f"featurizer backbone {spec.model_id!r} differs from the RM's {self.backbone.model_id!r}"
            )
        self.featurizer = featurizer
        return self

    def knows_user(self, user_id: str) -> bool:
        self._check_fitted()
        return user_id in self._index

    def to(self, device) -> RewardModel:
        self._check_fitted()
        self.module_.to(device)
        return self

    # ------------------------------------------------------------------ persistence
    def _extra_state(self) -> dict:
        return {}

    def save(self, path: str | Path) -> Path:
        """Write ``config.json`` (method, config, backbone, users, dim) + ``model.safetensors``."""
        from safetensors.torch import save

        self._check_fitted()
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().cpu().contiguous() for k, v in self.module_.state_dict().items()}
        with atomic_open(path / "model.safetensors", "wb") as fh:
            fh.write(save(state))
        write_json(
            path / "config.json",
            {
                "format_version": FORMAT_VERSION,
                "method": self.method,
                "config": asdict(self.config),
                "backbone": self.backbone.to_dict() if self.backbone else None,
                "users": list(self.users_),
                "dim": self.dim_,
                "fit": getattr(self, "fit_log_", {}),
                "reward_norm": self.reward_norm,
                **self._extra_state(),
            },
        )
        return path

    @classmethod
    def load(cls, path: str | Path) -> RewardModel:
        from safetensors.torch import load_file

        path = Path(path)
        if not (path / "config.json").exists():
            raise DataError("not a reward-model folder (no config.json)", path=str(path))
        meta = read_json(path / "config.json")
        if cls.method and meta.get("method") != cls.method:
            raise DataError(
                f"folder holds a {meta.get('method')!r} model, not {cls.method!r}", path=str(path)
            )
        rm = cls(config=cls.config_cls(**meta["config"]))
        rm.backbone = BackboneSpec.from_dict(meta["backbone"]) if meta.get("backbone") else None
        rm.users_ = list(meta["users"])
        rm._index = {u: i for i, u in enumerate(rm.users_)}
        rm.dim_ = int(meta["dim"])
        rm.fit_log_ = meta.get("fit", {})
        rm._load_extra(meta)
        rm.module_ = rm._build(rm.dim_, len(rm.users_))
        state = load_file(str(path / "model.safetensors"))
        for name in ("feat_mean", "feat_std", "reward_scale", "reward_center"):
            if name in state:
                rm.module_.register_buffer(name, torch.zeros_like(state[name]))
        if "feat_mean" in state and "reward_scale" not in state:  # written before reward normalisation
            state["reward_scale"] = torch.ones(())
            rm.module_.register_buffer("reward_scale", torch.ones(()))
        if "feat_mean" in state and "reward_center" not in state:  # written before reward centring
            state["reward_center"] = torch.zeros(len(rm.users_))
            rm.module_.register_buffer("reward_center", torch.zeros(len(rm.users_)))
        rm.module_.load_state_dict(state, strict=True)
        rm.module_.eval()
        return rm

    def _load_extra(self, meta: dict) -> None:
        pass

    # ------------------------------------------------------------------ hooks / helpers
    def _build(self, dim: int, n_users: int) -> torch.nn.Module:
        raise NotImplementedError

    def _score(self, uidx: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _margin(self, data: PairTensors, idx: torch.Tensor, step: int) -> torch.Tensor:
        """r_u(chosen) - r_u(rejected) for rows ``idx`` (training mode, with grad)."""
        u = data.uidx[idx]
        return self._score(u, self._standardize(data.chosen[idx])) - self._score(
            u, self._standardize(data.rejected[idx])
        )

    def _extra_loss(self, step: int) -> torch.Tensor | float:
        return 0.0

    def _setup(self, train: PairTensors) -> None:
        pass

    def _after_fit(self, train: PairTensors) -> None:
        pass

    def _standardize(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.module_.feat_mean) / self.module_.feat_std

    def _tensors(self, feats: PairFeatures) -> PairTensors:
        return PairTensors(
            self._user_index(feats.user_ids, allow_unknown=True), feats.chosen.float(), feats.rejected.float()
        )

    def _user_index(self, user_ids: Sequence[str], allow_unknown: bool = False) -> torch.Tensor:
        idx = [self._index.get(u, -1) for u in user_ids]
        if not allow_unknown and self.config.unknown_user == "error" and -1 in idx:
            missing = sorted({u for u, i in zip(user_ids, idx, strict=True) if i < 0})
            raise DataError(
                f"{self.method}: no training pairs for user(s) {missing[:5]}"
                f"{' ...' if len(missing) > 5 else ''} (unknown_user='error')"
            )
        return torch.tensor(idx, dtype=torch.long)

    def _check_fitted(self) -> None:
        if not hasattr(self, "module_"):
            raise RuntimeError(f"{self.method}: call fit() (or load()) before using the model")

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.config})"


def _check_pairs(feats: PairFeatures, name: str) -> None:
    if feats is None or len(feats) == 0:
        raise DataError(f"no {name} pairs: a reward model needs at least one training pair")
    if feats.chosen.shape != feats.rejected.shape or feats.chosen.shape[0] != len(feats.user_ids):
        raise DataError(
            f"{name} features are misaligned: chosen {tuple(feats.chosen.shape)}, "
            f"rejected {tuple(feats.rejected.shape)}, {len(feats.user_ids)} users"
        )
    if not (torch.isfinite(feats.chosen).all() and torch.isfinite(feats.rejected).all()):
        raise DataError(f"{name} features contain NaN or inf")


def per_user_mean(values: torch.Tensor, uidx: torch.Tensor, n_users: int) -> torch.Tensor:
    """Mean of ``values`` (N,) per user index (rows with uidx == -1 ignored); 0 for users without rows."""
    known = uidx >= 0
    sums = torch.zeros(n_users).index_add_(0, uidx[known], values[known].float())
    counts = torch.zeros(n_users).index_add_(0, uidx[known], torch.ones(int(known.sum())))
    return torch.where(counts > 0, sums / counts.clamp(min=1), torch.zeros(()))


def gather_user_param(table: torch.Tensor, uidx: torch.Tensor, fallback: torch.Tensor) -> torch.Tensor:
    """Rows of ``table`` (U, ...) for ``uidx`` (N,), with ``fallback`` (...) where uidx == -1.

    ``index_select``, not ``table[uidx]``: the backward of advanced indexing on CPU accumulates
    with atomic adds across threads (``index_put_(accumulate=True)``), so with 2+ threads the
    gradient of a (users x features) table, and every RM trained from it, changed in the last bits
    from run to run; ``index_select``'s backward (``index_add_``) sums in a fixed order."""
    known = uidx >= 0
    rows = torch.index_select(table, 0, uidx.clamp(min=0))
    if bool(known.all()):
        return rows
    shape = (-1,) + (1,) * (rows.dim() - 1)
    return torch.where(known.view(shape), rows, fallback.to(rows.dtype).expand_as(rows))


def load_config_json(path: str | Path) -> dict:
    p = Path(path) / "config.json"
    if not p.exists():
        raise DataError("not a reward-model folder (no config.json)", path=str(path))
    with open(p, encoding="utf-8") as fh:
        return json.load(fh)
