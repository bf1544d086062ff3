"""Prompt/response tokens and KV-cache conventions shared by features and decoding.

One rule for the whole project (design section 6): a (prompt, response) sequence is
``encode_prompt(tok, prompt) + encode_response(tok, response)``.
"""

from __future__ import annotations

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
