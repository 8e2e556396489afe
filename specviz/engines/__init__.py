"""Engines: how the models' forward passes run. ``eager`` is transformers' own forward with a
dynamic KV cache (any causal LM: the reference); ``static`` a Llama forward over preallocated
caches, which ``phases`` can replay as CUDA graphs on a GPU."""
