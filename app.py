"""specviz: the Streamlit app. Run with ``streamlit run app.py``.

Routes over the page files in app_pages/; each page draws its own widgets (the Live page's
model pair and decoding settings sit in its Run form).
"""

from pathlib import Path

import streamlit as st

from ui.common import keep_settings

FAVICON = Path(__file__).resolve().parent / "assets" / "favicon.png"  # served locally (offline)
st.set_page_config(page_title="specviz", page_icon=str(FAVICON), layout="wide")

pages = [
    st.Page("app_pages/home.py", title="Overview", icon=":material/home:", default=True),
    st.Page("app_pages/live.py", title="Live decoding", icon=":material/play_arrow:"),
    st.Page("app_pages/walkthrough.py", title="Walkthrough", icon=":material/slideshow:"),
    st.Page("app_pages/inspector.py", title="Trace inspector", icon=":material/search:"),
    st.Page("app_pages/runs.py", title="Runs", icon=":material/table_chart:"),
    st.Page("app_pages/lessons.py", title="Lessons", icon=":material/school:"),
    st.Page("app_pages/theory.py", title="Theory", icon=":material/functions:"),
    st.Page("app_pages/toy_lab.py", title="Toy lab", icon=":material/science:"),
]
# labels wrap instead of ending in "…" where a column is narrow (a metric's label at 1024 px:
# "α̂ per judg…", "mean accepted…")
st.html("<style>[data-testid='stMetricLabel'], [data-testid='stMetricLabel'] * "
        "{ white-space: normal !important; overflow: visible !important; "
        "text-overflow: clip !important; height: auto !important; }</style>")
page = st.navigation(pages)
keep_settings()
page.run()
