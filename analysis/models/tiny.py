"""Tiny random models and tokenizers built from a config for the tests (no network)."""

from __future__ import annotations

from functools import lru_cache

import torch

from analysis.errors import ModelError
from analysis.models.loading import _ensure_pad

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
