"""Decoding: the base policy (batched greedy / sampling) and reward-guided decoders.

- :mod:`analysis.decoding.base`: ``generate_greedy``, ``generate_sample`` (left-padded batches,
  KV cache, stop at EOS).
- ``analysis.decoding.args`` / ``best_of_n`` / ``reference``: reward-guided decoding (ARGS,
  best-of-n, the naive reference ARGS), imported explicitly by their users.
"""

from analysis.decoding.base import generate_greedy, generate_sample

__all__ = ["generate_greedy", "generate_sample"]
