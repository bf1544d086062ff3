"""Faster small-batch ``nn.Linear`` on CPU: transposed (and column-blocked) copies of each weight.

Decoding multiplies a few rows (one per live sequence, or k candidates) by every weight of the
model. With the weight in PyTorch's (out, in) layout, MKL's sgemm for a product ``x @ W.T``
with few rows is several times slower on AVX-512 Xeons than with an (in, out)-contiguous copy
``W.T``, while for many rows (prefill, feature passes) the default layout is as fast or faster.
So each linear keeps its weight as it is and gains ``weight_t = W.T.contiguous()``; products with
at most ``max_rows`` rows use the copy, the rest the default path (measurements:
``docs/performance.md``).

Column blocks. A decode step streams every weight from memory once (SmolLM2: 0.54 GB per step,
far more than the caches hold), and with 2-48 rows MKL overlaps that stream badly with the
arithmetic when ``weight_t``'s columns are read as strided panels. Each linear whose width is a
multiple of :data:`BLOCK` (and more than one block) therefore also keeps ``weight_b``: the same
columns cut into contiguous ``(in, BLOCK)`` blocks, multiplied in one ``bmm`` and put back in
order, which streams the weight faster. On one thread each block's product gives
exactly ``weight_t``'s numbers (every output is the same dot product in the same order: tested
bit for bit over 2-48 rows and every SmolLM2 shape), so it is used on one thread only: with two,
MKL splits some of ``weight_t``'s products differently (1536 x 576 from 17 rows on) and the
blocks would change the last bits of a two-thread run. One row keeps ``weight_t`` (a plain
matrix-vector stream, faster than blocks).

The results agree with the default layout up to float rounding (different summation order), so
greedy decoding may rarely pick a different token at a near tie. Inference only: the copies do
not follow later changes of the weight (the studies never train the policy); after a move to
another device or dtype the layer falls back to the default path. The memory cost is
two more copies of the linear weights.

>>> import torch
>>> lin = torch.nn.Linear(8, 4)
>>> x = torch.randn(3, 8)
>>> y0 = lin(x)
>>> enable_small_batch_linear(torch.nn.Sequential(lin))
1
>>> bool(torch.allclose(lin(x), y0, atol=1e-6)), type(lin).__name__
(True, 'SmallBatchLinear')
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

MAX_ROWS = 48  # products with at most this many rows use the transposed copy (the measured crossover)
BLOCK = 192  # output columns per contiguous weight block (products of 2..MAX_ROWS rows)


def column_blocks(weight_t: torch.Tensor, block: int = BLOCK) -> torch.Tensor | None:
    """``weight_t`` (in, out) cut into contiguous column blocks ``(out // block, in, block)``, or
    None when ``out`` is not a multiple of ``block`` or fits in one block (then nothing is gained)."""
    n_in, n_out = weight_t.shape
    if block < 1 or n_out % block or n_out <= block:
        return None
    return weight_t.reshape(n_in, n_out // block, block).permute(1, 0, 2).contiguous()


class SmallBatchLinear(torch.nn.Linear):
    """An ``nn.Linear`` whose products with few rows use (in, out)-contiguous weight copies."""

    weight_t: torch.Tensor
    weight_b: torch.Tensor | None
    max_rows: int

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        same = x.dtype == self.weight_t.dtype and x.device == self.weight_t.device  # e.g. moved to CUDA later
        rows = x.numel() // max(1, x.shape[-1])
        if same and rows <= self.max_rows:
            # 2-D products: matmul of a non-contiguous 3-D x would broadcast the weight (bmm, ~10x slower)
            x2 = x.reshape(-1, x.shape[-1])
            blocks = self.weight_b
            if rows > 1 and blocks is not None and torch.get_num_threads() == 1:  # same numbers, faster
                y = torch.bmm(x2.expand(blocks.shape[0], *x2.shape), blocks).transpose(0, 1).reshape(rows, -1)
            else:
                y = torch.mm(x2, self.weight_t)
            y = y.view(*x.shape[:-1], -1)
            return y if self.bias is None else y + self.bias
        return F.linear(x, self.weight, self.bias)


def enable_small_batch_linear(model: torch.nn.Module, max_rows: int = MAX_ROWS) -> int:
    """Give every CPU ``nn.Linear`` of ``model`` the small-batch path (in place, idempotent).

    Returns the number of layers changed. Layers on other devices (CUDA has no such cliff) and
    already converted ones are left alone.
    """
    n = 0
    for mod in model.modules():
        if type(mod) is torch.nn.Linear and mod.weight.device.type == "cpu":
            with torch.no_grad():
                mod.weight_t = mod.weight.detach().t().contiguous()
                mod.weight_b = column_blocks(mod.weight_t)
            mod.max_rows = int(max_rows)
            mod.__class__ = SmallBatchLinear
            n += 1
    return n
