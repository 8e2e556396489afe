"""``specviz app``: start the bundled Streamlit app (the installed one, or the checkout's)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys

from .common import CliError


def register(sub) -> None:
    app = sub.add_parser(
        "app", usage="specviz app [-h] [--port PORT] [STREAMLIT OPTION ...]",
        help="start the app in a browser (needs the app extra: pip install 'specviz[app]')",
        description="Start the specviz app with Streamlit, with the project's settings "
                    "(.streamlit/config.toml). Options after the known ones go to "
                    "`streamlit run`, e.g. --server.address 0.0.0.0 or --server.headless false.")
    app.add_argument("--port", type=int, default=None,
                     help="the port to serve on (default: Streamlit's, 8501)")
    app.set_defaults(func=cmd_app, models=False, passthrough=[])


def _config_flags(root, given: list[str]) -> list[str]:
    """The project's .streamlit/config.toml as `--section.key=value` flags, since Streamlit
    reads that file only from the folder it starts in; options the user gives win."""
    import tomllib
    path = root / ".streamlit" / "config.toml"
    try:
        config = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError):
        return []
    flags = []
    for section, values in config.items():
        for key, value in values.items():
            name = f"--{section}.{key}"
            if any(g == name or g.startswith(name + "=") for g in given):
                continue
            flags.append(f"{name}={str(value).lower() if isinstance(value, bool) else value}")
    return flags


def cmd_app(args) -> int:
    from ..paths import APP, ROOT
    if importlib.util.find_spec("streamlit") is None:
        raise CliError("the app needs Streamlit: pip install 'specviz[app]'")
    if not APP.is_file():
        raise CliError(f"the app is not installed with this package ({APP} is missing)")
    if args.port is not None and not 1 <= args.port <= 65535:
        raise CliError(f"--port must be between 1 and 65535, got {args.port}")
    extra = [a for a in args.passthrough if a != "--"]
    port = [] if args.port is None else [f"--server.port={args.port}"]
    cmd = [sys.executable, "-m", "streamlit", "run", str(APP), *_config_flags(ROOT, extra),
           *port, *extra]
    try:
        return subprocess.call(cmd)
    except KeyboardInterrupt:  # Streamlit got the Ctrl-C too and stops on its own
        return 130
