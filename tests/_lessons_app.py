"""The Lessons page opened in AppTest (shared by the lesson app tests)."""

from pathlib import Path

from streamlit.testing.v1 import AppTest

APP = str(Path(__file__).resolve().parent.parent / "app.py")


def lessons_page(ok) -> AppTest:
    """The app started and switched to the Lessons page, checked by ``ok``."""
    app = AppTest.from_file(APP, default_timeout=180)
    app.run()
    app.switch_page("app_pages/lessons.py")
    app.run()
    ok(app)
    return app
