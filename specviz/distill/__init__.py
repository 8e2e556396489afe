"""Distilling the shipped draft model (q) from the embedded target (p), and evaluating it.

One command reproduces the shipped draft (a GPU makes it take minutes; it runs, slowly, on a
CPU too)::

    python -m specviz.distill all --out artifacts/distill

which runs, in one process, ``data`` (the target writes prompts and answers them:
``data.py``), ``train`` (KL distillation on the target's probabilities: ``train.py``) and
``pack`` (weights, tokenizer and model card into ``assets/models/smollm2-draft``:
``card.py``). The evaluation runs separately, on the machine it reports on::

    python -m specviz.distill eval --md docs/draft-model.md

Offline, set SPECVIZ_GGUF to the SmolLM2-135M-Instruct Q4_1 GGUF (see ``specviz.models``).
This package never imports streamlit.
"""
