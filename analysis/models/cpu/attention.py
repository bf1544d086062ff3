"""SDPA attention for CPU that shares key/value heads in masked multi-token passes.

For a model with grouped-query attention (SmolLM2: 9 query heads, 3 key/value heads) and a padding
mask, transformers' ``sdpa`` attention copies every key/value head once per query head
(``repeat_kv``) before calling ``scaled_dot_product_attention`` on CPU, whereas PyTorch's CPU
kernel reads the shared heads itself with ``enable_gqa=True``. This attention takes that path for
masked passes of more than one token (prefill of a padded batch, feature passes) and hands every
other call (one-token decoding, which transformers already packs; unmasked passes, which already use
``enable_gqa``) to transformers' own ``sdpa`` function. The kernel computes each query head from the
same key/value numbers either way, so the outputs are bit-identical (tested); skipping the copies
makes masked prefill and feature passes faster (measurements: ``docs/performance.md``).

Masks are built exactly as for ``sdpa`` (the same mask function is registered under this name).

>>> from analysis.models.tiny import build_tiny_model
>>> model, _ = build_tiny_model("llama")
>>> use_cpu_gqa_attention(model), model.config._attn_implementation
(True, 'sdpa_cpu_gqa')
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from transformers import AttentionInterface, AttentionMaskInterface
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import sdpa_mask

NAME = "sdpa_cpu_gqa"


def cpu_gqa_sdpa_forward(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    dropout: float = 0.0,
    scaling: float | None = None,
    is_causal: bool | None = None,
    **kwargs,
):
    """transformers' ``sdpa_attention_forward``, with ``enable_gqa=True`` instead of ``repeat_kv`` for
    masked multi-token passes on CPU (same arguments, same output layout ``(B, T, H, D)``)."""
    groups = getattr(module, "num_key_value_groups", 1)
    plain = kwargs.get("position_bias") is None and kwargs.get("softcap") is None
    if (
        groups > 1
        and plain
        and attention_mask is not None
        and query.shape[2] > 1
        and query.device.type == "cpu"
    ):
        out = F.scaled_dot_product_attention(
            query, key, value, attn_mask=attention_mask, dropout_p=dropout, scale=scaling, enable_gqa=True
        )
        return out.transpose(1, 2).contiguous(), None
    return sdpa_attention_forward(
        module,
        query,
        key,
        value,
        attention_mask,
        dropout=dropout,
        scaling=scaling,
        is_causal=is_causal,
        **kwargs,
    )


AttentionInterface.register(NAME, cpu_gqa_sdpa_forward)
AttentionMaskInterface.register(NAME, sdpa_mask)


def use_cpu_gqa_attention(model) -> bool:
    """Switch a CPU model that runs transformers' ``sdpa`` attention with grouped key/value heads to
    :func:`cpu_gqa_sdpa_forward` (in place). Returns whether it was switched; other models (eager or
    flash attention, no grouped heads, not on CPU) are left alone."""
    config = model.config
    heads = getattr(config, "num_attention_heads", None)
    kv_heads = getattr(config, "num_key_value_heads", None) or heads
    if getattr(config, "_attn_implementation", None) != "sdpa" or not heads or kv_heads >= heads:
        return False
    if next(model.parameters()).device.type != "cpu":
        return False
    model.set_attn_implementation(NAME)
    return model.config._attn_implementation == NAME
