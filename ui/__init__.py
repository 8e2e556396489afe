"""Streamlit helpers of the specviz app (widgets, caches, shared views).

Kept outside the ``specviz`` package on purpose: importing ``specviz`` never imports streamlit.
"""
