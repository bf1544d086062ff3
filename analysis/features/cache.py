"""The feature cache: one cache key, pair features on disk, and the per-text feature store.

:func:`feature_cache_key` is the one fingerprint of cached features: model id + weight
fingerprint (:func:`model_fingerprint`), backbone spec (layer, kind, pooling), chat template,
vocabulary size and the data (pairs; none for a per-backbone file). :func:`pair_features` stores
one file per (backbone, pairs); :class:`TextFeatureStore` stores one file per backbone holding a
feature per unique (prompt, response), used by the studies. Features come from
:mod:`analysis.features.passes` (the engine, with the prompt-sharing KV path). Files are written
atomically.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path

import torch
from tqdm.auto import tqdm

from analysis.data.records import DataError, PreferencePair
from analysis.features import passes as _F
from analysis.features.passes import BackboneSpec, PairFeatures, TextFeaturizer, is_causal_lm
from analysis.io import atomic_open
from analysis.models.loading import model_id

CACHE_VERSION = 1


def model_fingerprint(model) -> str:
    """Cheap weight fingerprint (a few values of the first and last parameter)."""
    params = list(model.parameters())
    vals = [
        float(params[0].detach().flatten()[:64].double().sum()),
        float(params[-1].detach().flatten()[:64].double().sum()),
    ]
    cfg = model.config.to_json_string() if hasattr(model.config, "to_json_string") else str(model.config)
    return hashlib.sha256((cfg + repr(vals)).encode()).hexdigest()[:16]


def feature_cache_key(model, tok, pairs: Sequence[PreferencePair], spec: BackboneSpec) -> str:
    """sha256 of (model id + weight fingerprint, layer, pooling, chat template, data)."""
    h = hashlib.sha256()
    head = {
        "v": CACHE_VERSION,
        "model": model_id(model),
        "fp": model_fingerprint(model),
        "spec": spec.to_dict(),
        "template": getattr(tok, "chat_template", None) or "",
        "vocab": len(tok),
    }
    h.update(json.dumps(head, sort_keys=True).encode())
    for p in pairs:
        h.update(json.dumps([p.user_id, p.prompt, p.chosen, p.rejected, p.pair_id, p.split]).encode())
    return h.hexdigest()[:32]


def pair_features(
    model,
    tok,
    pairs: Sequence[PreferencePair],
    *,
    layer: int = -1,
    cache_dir: str | Path | None = None,
    batch_size: int = 16,
    progress: bool = True,
    kind: str | None = None,
    pooling: str | None = None,
) -> PairFeatures:
    """Features of every pair's chosen and rejected response (cached on disk when ``cache_dir``).

    ``pooling`` defaults to ``"last"`` for a causal LM and ``"mean"`` for an encoder; ``kind`` to
    ``"shared"`` for a causal LM and ``"separate"`` for an encoder. The cache file is
    ``<cache_dir>/<key>.safetensors`` (key: :func:`feature_cache_key`), written atomically.
    """
    causal = is_causal_lm(model)
    spec = BackboneSpec(
        model_id(model),
        layer,
        kind or ("shared" if causal else "separate"),
        pooling or ("last" if causal else "mean"),
    )
    pairs = list(pairs)
    for p in pairs:
        if not isinstance(p, PreferencePair):
            raise DataError(f"expected PreferencePair, got {type(p).__name__}")
    meta = dict(
        user_ids=[p.user_id for p in pairs],
        pair_ids=[p.pair_id for p in pairs],
        splits=[p.split for p in pairs],
        backbone=spec,
        prompts=[p.prompt for p in pairs],
        chosen_text=[p.chosen for p in pairs],
        rejected_text=[p.rejected for p in pairs],
    )
    path = None
    if cache_dir is not None:
        from safetensors.torch import load_file

        path = Path(cache_dir) / f"{feature_cache_key(model, tok, pairs, spec)}.safetensors"
        if path.exists():
            t = load_file(str(path))
            return PairFeatures(chosen=t["chosen"], rejected=t["rejected"], **meta)
    feat = TextFeaturizer(model, tok, spec, batch_size=batch_size)
    texts_p = meta["prompts"] + meta["prompts"]
    texts_r = meta["chosen_text"] + meta["rejected_text"]
    if spec.pooling == "last":
        both = _F.sequence_features(
            model, tok, texts_p, texts_r, layer=layer, batch_size=batch_size, progress=progress
        )
    else:
        chunks = [
            feat(texts_p[i : i + batch_size], texts_r[i : i + batch_size])
            for i in tqdm(range(0, len(texts_r), batch_size), desc="pair features", disable=not progress)
        ]
        both = torch.cat(chunks) if chunks else torch.zeros(0, 0)
    n = len(pairs)
    chosen, rejected = both[:n].contiguous(), both[n:].contiguous()
    if path is not None:
        from safetensors.torch import save

        with atomic_open(path, "wb") as fh:
            fh.write(
                save({"chosen": chosen, "rejected": rejected}, metadata={"spec": json.dumps(spec.to_dict())})
            )
    return PairFeatures(chosen=chosen, rejected=rejected, **meta)


class TextFeatureStore:
    """Full-response features phi(x, y) of one backbone + layer, keyed by (prompt, response), on disk.

    Datasets share many texts (the same user headline is ``chosen`` in Pref-LaMP and style-swap
    pairs; attribute pairs reuse a few samples per prompt across all users), so features are
    computed once per unique text and stored in one safetensors file. Responses to the same
    prompt share one prompt forward pass (:func:`analysis.features.passes.shared_prompt_features`, equal to
    :func:`analysis.features.passes.sequence_features` within float tolerance; tested).
    """

    def __init__(self, folder: str | Path, model, tok, spec: BackboneSpec):
        self.model, self.tok, self.spec = model, tok, spec
        self.path = Path(folder) / f"{feature_cache_key(model, tok, (), spec)}.safetensors"
        self.table: dict[str, torch.Tensor] = {}
        if self.path.exists():
            from safetensors.torch import load_file

            self.table = load_file(str(self.path))

    @staticmethod
    def key(prompt, response: str) -> str:
        blob = json.dumps([prompt, response], sort_keys=True, default=str).encode()
        return hashlib.sha256(blob).hexdigest()[:16]

    def get(
        self, prompts: list, responses: list[str], batch_size: int = 16, progress: bool = True
    ) -> torch.Tensor:
        """(N, H) float32 features, computing and storing the missing ones."""
        from safetensors.torch import save

        keys = [self.key(p, r) for p, r in zip(prompts, responses, strict=True)]
        todo = {k: (p, r) for k, p, r in zip(keys, prompts, responses, strict=True) if k not in self.table}
        if todo:
            ps, rs = zip(*todo.values(), strict=True)
            sharing = _F.supports_prompt_sharing(self.model)
            fn = _F.shared_prompt_features if sharing else _F.sequence_features
            feats = fn(
                self.model,
                self.tok,
                list(ps),
                list(rs),
                layer=self.spec.layer,
                batch_size=batch_size,
                progress=progress,
            )
            new = {k: feats[i].contiguous() for i, k in enumerate(todo)}
            self.table.update(new)
            self._store(new, save)
        return torch.stack([self.table[k] for k in keys]) if keys else torch.zeros(0, 0)

    def put(self, prompts: list, responses: list[str], feats: torch.Tensor) -> int:
        """Add features computed elsewhere (rows of ``feats`` for the (prompt, response) pairs) where
        the store has none; rows already stored win. Returns the number of rows added."""
        from safetensors.torch import save

        new = {}
        for p, r, f in zip(prompts, responses, feats, strict=True):
            k = self.key(p, r)
            if k not in self.table and k not in new:
                new[k] = f.float().contiguous()
        if new:
            self.table.update(new)
            self._store(new, save)
        return len(new)

    def _store(self, new: dict, save) -> None:
        """Write the table with ``new`` merged into the file's current rows, under a file lock:
        concurrent writers (sweep tasks on one model) never drop each other's rows."""
        from filelock import FileLock
        from safetensors.torch import load_file

        self.path.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(str(self.path) + ".lock"):
            if self.path.exists():
                self.table = {**self.table, **load_file(str(self.path))}  # rows on disk win
            with atomic_open(self.path, "wb") as fh:
                fh.write(save(self.table))
