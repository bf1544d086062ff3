"""External reward models behind one interface: ``RewardFunction.score(user_id, prompt, texts)``.

A lab's own reward model, not trained here, measured and used like the project's RMs:

- :class:`HFReward`: a Hugging Face ``AutoModelForSequenceClassification`` checkpoint (one logit);
  the scored text is ``template.format(user_id=..., prompt=..., response=...)`` (default
  ``"{prompt}\\n{response}"``; put ``{user_id}`` in it to condition one shared model on the user);
- :class:`PerUserReward`: one reward function per user (e.g. a folder of checkpoints, one
  sub-folder per user id, ``default/`` for users without their own);
- :class:`CallableReward`: any Python function ``fn(user_id, prompt, texts) -> rewards``.

Every :class:`RewardFunction` is a *text* reward model (``input_kind = "text"``, like the oracle):
:meth:`RewardFunction.reward_text` is what RM accuracy (:mod:`analysis.rewards.evaluate`), policy
accuracy (:mod:`analysis.evaluation.policy_accuracy`, which decodes the policy's token prefixes to text, so
the RM's tokenizer may differ from the policy's), best-of-n and ARGS (the text path of
:mod:`analysis.decoding.args` and :mod:`analysis.decoding.reference`) call. Its rewards are used
as they come (no per-user centring: the model defines its own scale).

:func:`load_reward_function` turns a command-line ``--reward-model`` into one of these: a
checkpoint folder, a folder of per-user checkpoints, or ``module:function`` /
``path/to/file.py:function`` (a function, a :class:`RewardFunction` instance or a class to call).

Example
-------
>>> rm = CallableReward(lambda user_id, prompt, texts: [t.count("a") for t in texts], name="count_a")
>>> rm.reward_text(["u", "u"], ["p", "p"], ["banana", "kiwi"]).tolist()
[3.0, 0.0]
"""

from __future__ import annotations

import importlib
import importlib.util
import math
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import torch

from analysis.errors import ConfigError, ModelError

DEFAULT_TEMPLATE = "{prompt}\n{response}"
DEFAULT_USER_DIR = "default"  # a per-user folder's checkpoint for users without their own


class RewardFunction:
    """A reward ``r_u(x, y)`` computed outside the project: subclasses implement :meth:`score`."""

    method = "external"
    input_kind = "text"
    backbone = None  # no backbone features: the text path scores decoded text
    featurizer = None

    def __init__(self, name: str = "external"):
        self.name = name
        self.study_key_ = f"external:{name}"

    def score(self, user_id: str, prompt: str, texts: Sequence[str]) -> Sequence[float]:
        """Rewards of ``texts`` (responses or response prefixes to ``prompt``) for ``user_id``."""
        raise NotImplementedError

    def knows_user(self, user_id: str) -> bool:
        return True

    @torch.no_grad()
    def reward_text(
        self, user_ids: Sequence[str], prompts: Sequence, responses: Sequence[str]
    ) -> torch.Tensor:
        """``(N,)`` float32: one :meth:`score` call per (user, prompt) group, in input order."""
        from analysis.decoding.args import prompt_text

        if not (len(user_ids) == len(prompts) == len(responses)):
            raise ValueError(
                f"lengths differ: {len(user_ids)} users, {len(prompts)} prompts, {len(responses)} responses"
            )
        groups: dict[tuple[str, str], list[int]] = {}
        for i, (u, p) in enumerate(zip(user_ids, prompts, strict=True)):
            groups.setdefault((str(u), prompt_text(p)), []).append(i)
        out = torch.empty(len(responses), dtype=torch.float32)
        for (u, p), idx in groups.items():
            got = [float(v) for v in self.score(u, p, [responses[i] for i in idx])]
            if len(got) != len(idx):
                raise ModelError(
                    f"reward model {self.name!r} returned {len(got)} rewards for {len(idx)} texts"
                )
            bad = [v for v in got if not math.isfinite(v)]
            if bad:
                raise ModelError(
                    f"reward model {self.name!r} returned a non-finite reward {bad[0]} (user {u!r})"
                )
            out[torch.tensor(idx)] = torch.tensor(got, dtype=torch.float32)
        return out

    def reward(self, user_ids, features):
        raise TypeError(
            f"{self.name} is an external text reward model: call reward_text(user_ids, prompts, texts)"
        )

    def fit(self, *args, **kwargs):
        raise ConfigError(f"{self.name} is an external reward model: it is used as it is, not trained here")

    def to(self, device) -> RewardFunction:
        return self

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"


class CallableReward(RewardFunction):
    """Any Python function ``fn(user_id, prompt, texts) -> rewards`` (one per text)."""

    def __init__(self, fn: Callable[[str, str, list[str]], Sequence[float]], name: str | None = None):
        if not callable(fn):
            raise ConfigError(f"expected a callable reward function, got {type(fn).__name__}")
        super().__init__(name or getattr(fn, "__name__", "callable"))
        self.fn = fn

    def score(self, user_id, prompt, texts):
        out = self.fn(user_id, prompt, list(texts))
        return out.tolist() if hasattr(out, "tolist") else list(out)


class HFReward(RewardFunction):
    """A sequence-classification checkpoint with one output logit: the reward of ``template``'s text.

    The RM has its own tokenizer (any, e.g. unlike the policy's); texts are scored in batches of
    ``batch_size`` (right padding; a missing pad token is the EOS token).
    """

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        template: str = DEFAULT_TEMPLATE,
        batch_size: int = 16,
        device: str = "cpu",
        max_length: int | None = None,
        trust_remote_code: bool = False,
        name: str | None = None,
    ):
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        check_template(template)
        super().__init__(name or str(path))
        try:
            self.tok = AutoTokenizer.from_pretrained(str(path), trust_remote_code=trust_remote_code)
            self.model = AutoModelForSequenceClassification.from_pretrained(
                str(path), trust_remote_code=trust_remote_code
            )
        except (OSError, ValueError) as e:
            msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise ModelError(f"{path}: not a sequence-classification checkpoint ({msg})") from None
        if self.model.config.num_labels != 1:
            raise ModelError(
                f"{path}: a reward model has one output logit, this one has {self.model.config.num_labels}"
            )
        if self.tok.pad_token is None:
            self.tok.pad_token = self.tok.eos_token
        self.tok.padding_side = "right"
        self.model.config.pad_token_id = self.tok.pad_token_id
        self.model.to(device).eval()
        self.template, self.batch_size, self.device, self.max_length = (
            template,
            batch_size,
            device,
            max_length,
        )

    @torch.no_grad()
    def score(self, user_id, prompt, texts):
        full = [self.template.format(user_id=user_id, prompt=prompt, response=t) for t in texts]
        out = []
        for i in range(0, len(full), self.batch_size):
            enc = self.tok(
                full[i : i + self.batch_size],
                return_tensors="pt",
                padding=True,
                truncation=self.max_length is not None,
                max_length=self.max_length,
            ).to(self.device)
            out.append(self.model(**enc).logits[:, 0].float().cpu())
        return torch.cat(out).tolist() if out else []


class PerUserReward(RewardFunction):
    """One reward function per user id; ``fallback`` scores the other users (else they are an error)."""

    def __init__(
        self, per_user: dict[str, RewardFunction], fallback: RewardFunction | None = None, name=None
    ):
        if not per_user:
            raise ConfigError("a per-user reward model needs at least one user")
        super().__init__(name or "per_user")
        self.per_user, self.fallback = {str(u): r for u, r in per_user.items()}, fallback

    def knows_user(self, user_id: str) -> bool:
        return str(user_id) in self.per_user

    def score(self, user_id, prompt, texts):
        rm = self.per_user.get(str(user_id), self.fallback)
        if rm is None:
            raise ModelError(
                f"reward model {self.name!r} has no model for user {user_id!r} and no "
                f"{DEFAULT_USER_DIR}/ fallback (users: {', '.join(sorted(self.per_user)[:5])}, ...)"
            )
        return rm.score(user_id, prompt, texts)


def check_template(template: str) -> str:
    """``template`` must name ``{response}`` and only the fields ``user_id``, ``prompt``, ``response``."""
    import string

    try:
        names = {f for _, f, _, _ in string.Formatter().parse(template) if f is not None}
    except ValueError as e:
        raise ConfigError(f"reward template {template!r}: {e}") from None
    bad = sorted(names - {"user_id", "prompt", "response"})
    if bad or "response" not in names:
        raise ConfigError(
            f"reward template {template!r} must contain {{response}} and may use {{user_id}} and {{prompt}}"
            + (f"; unknown field(s) {bad}" if bad else "")
        )
    return template


def _is_checkpoint(p: Path) -> bool:
    return p.is_dir() and (p / "config.json").is_file()


def _load_object(spec: str):
    """``module:attr`` or ``path/to/file.py:attr`` -> the attribute."""
    where, _, attr = spec.rpartition(":")
    if where.endswith(".py"):
        path = Path(where).expanduser()
        if not path.is_file():
            raise ConfigError(f"--reward-model {spec!r}: {path} is not a file")
        mod_spec = importlib.util.spec_from_file_location(f"_reward_{path.stem}", path)
        module = importlib.util.module_from_spec(mod_spec)
        mod_spec.loader.exec_module(module)
    else:
        try:
            module = importlib.import_module(where)
        except ImportError as e:
            raise ConfigError(f"--reward-model {spec!r}: cannot import {where!r} ({e})") from None
    if not hasattr(module, attr):
        raise ConfigError(f"--reward-model {spec!r}: {where} has no attribute {attr!r}")
    return getattr(module, attr)


def load_reward_function(
    spec: str | os.PathLike,
    *,
    template: str = DEFAULT_TEMPLATE,
    device: str = "cpu",
    batch_size: int = 16,
    trust_remote_code: bool = False,
) -> RewardFunction:
    """The :class:`RewardFunction` that ``spec`` names (see the module docstring for the forms)."""
    s = str(spec)
    p = Path(s).expanduser()
    kw = {
        "template": template,
        "device": device,
        "batch_size": batch_size,
        "trust_remote_code": trust_remote_code,
    }
    if _is_checkpoint(p):
        return HFReward(p, **kw)
    if p.is_dir():
        subs = sorted(d for d in p.iterdir() if _is_checkpoint(d))
        if not subs:
            raise ConfigError(
                f"--reward-model {s}: neither a checkpoint (config.json) nor a folder of per-user checkpoints"
            )
        models = {d.name: HFReward(d, name=f"{p.name}/{d.name}", **kw) for d in subs}
        fallback = models.pop(DEFAULT_USER_DIR, None)
        return PerUserReward(models, fallback, name=str(p))
    if ":" in s and not p.exists():
        obj = _load_object(s)
        if isinstance(obj, type):
            obj = obj()
        if isinstance(obj, RewardFunction):
            return obj
        if hasattr(obj, "score") and callable(obj.score):
            return CallableReward(obj.score, name=s)
        return CallableReward(obj, name=s)
    raise ConfigError(
        f"--reward-model {s}: not found (give a checkpoint folder, a folder of per-user checkpoints, "
        "or module:function / file.py:function)"
    )
