"""Where ``specviz run`` writes its trace (--out), so that no slip loses data.

- The format follows the suffix: ``.jsonl``, ``.ndjson`` or ``.json`` JSON Lines; ``.parquet``
  Parquet (the same export the app downloads); any other suffix is refused.
- An existing file is replaced only with --force, and only when it is a trace (JSON Lines
  whose first record is a specviz record, a Parquet file, or empty); a file the run reads
  (--prompts, --gguf) is never written, whatever the path's spelling or links.
- A new file is created exclusively (O_EXCL) and written step by step, so a second run that
  names the same file is refused at once instead of interleaving with the first. With --force,
  and for Parquet, the runs go to a hidden file beside it (``.NAME.PID.partial``), moved into
  place when the command ends (finished, failed or interrupted: the finished work is kept), so
  the old file stays whole until then and the last of two writers replaces the other's whole.
- A character device or a FIFO (``/dev/null``, ``/dev/stdout``) is written as a stream, JSON
  Lines only; block devices, sockets and directories are refused.
"""

from __future__ import annotations

import errno
import os
import stat
from datetime import datetime
from pathlib import Path

from ..errors import one_line
from .common import CliError

JSONL_SUFFIXES = (".jsonl", ".ndjson", ".json")
PARQUET_SUFFIXES = (".parquet",)
_PARTIAL = ".partial"


def _default_name() -> str:
    """traces/run-TIME.jsonl, or run-TIME-2.jsonl and on when runs start in the same second."""
    stem = f"traces/run-{datetime.now().strftime('%Y%m%d-%H%M%S')}"
    name, n = f"{stem}.jsonl", 1
    while os.path.lexists(name):
        n += 1
        name = f"{stem}-{n}.jsonl"
    return name


def _same_file(a: Path, b: str | None) -> bool:
    if not b:
        return False
    try:
        return a.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def _is_trace(path: Path) -> bool:
    """Whether an existing regular file is something --force may replace: empty, a Parquet
    file, or JSON Lines whose first non-blank line is a specviz record."""
    import json
    try:
        with open(path, "rb") as f:
            head = f.read(1 << 16)
    except OSError:
        return False
    if not head.strip() or head.startswith(b"PAR1"):
        return True
    first = head.lstrip().split(b"\n", 1)[0]
    try:
        obj = json.loads(first)
    except ValueError:  # also a first line longer than 64 KiB (a run record holds its prompt)
        return first.replace(b" ", b"").startswith(b'{"record":"run"')
    return isinstance(obj, dict) and obj.get("record") in ("run", "step", "summary")

class Output:
    """The trace file of one ``specviz run``: checked before any model loads (``check``),
    written through ``open`` and put in place by ``finish``."""

    def __init__(self, spec: str | None, *, force: bool = False,
                 inputs: tuple[str | None, ...] = ()):
        if spec is None:
            spec = _default_name()
        elif not spec.strip():
            raise CliError("--out is empty; give a file name (or leave --out out for "
                           "traces/run-TIME.jsonl)")
        self.shown = Path(spec)  # as the user wrote it, for messages
        # a symbolic link is followed: its target is the file written
        self.path = Path(os.path.realpath(os.path.expanduser(spec)))
        self.force = force
        self.stream = False
        self.reserved = False
        self.partial: Path | None = None
        self._stream = None
        self._check(inputs)

    @property
    def parquet(self) -> bool:
        return self.shown.suffix.lower() in PARQUET_SUFFIXES  # as named, even by a link

    def _check(self, inputs) -> None:
        out, shown = self.path, self.shown
        for name, path in zip(("--prompts", "--gguf"), inputs):
            if _same_file(out, path):
                raise CliError(f"--out {shown} is the {name} file this run reads; give "
                               "another file name")
        try:
            st = os.stat(out)
        except FileNotFoundError:
            st = None
        except OSError as e:
            raise CliError(f"cannot write {shown}: {e.strerror or e}") from None
        if st is not None and stat.S_ISDIR(st.st_mode):
            raise CliError(f"--out {shown} is a directory; give a file name")
        if st is not None and (stat.S_ISCHR(st.st_mode) or stat.S_ISFIFO(st.st_mode)):
            if self.parquet:
                raise CliError(f"--out {shown}: Parquet is written to a regular file only")
            self.stream = True  # /dev/null, /dev/stdout, a pipe: written as it comes
            return
        if st is not None and not stat.S_ISREG(st.st_mode):
            raise CliError(f"--out {shown} is a block device or a socket; give a file name")
        suffix = shown.suffix.lower()
        if suffix not in JSONL_SUFFIXES + PARQUET_SUFFIXES:
            raise CliError(f"--out {shown}: specviz writes JSON Lines (.jsonl) or Parquet "
                           f"(.parquet), not {suffix or 'a file without a suffix'}")
        if st is not None:
            if not self.force:
                raise CliError(f"--out {shown} exists; pass --force to replace it, or give "
                               "another file name")
            if not _is_trace(out):
                raise CliError(f"--out {shown} exists and is not a specviz trace; it is not "
                               "replaced, even with --force")

    def open(self):
        """A TraceWriter for the runs: on the stream, on the file itself (created exclusively:
        steps show as they are written), or on the hidden partial file (--force, Parquet)."""
        from ..traces.records import TraceWriter
        out = self.path
        try:
            if self.stream:
                self._stream = _open_stream(out)
                return TraceWriter(self._stream)
            out.parent.mkdir(parents=True, exist_ok=True)
            if not self.force:  # reserve the name: a second run is refused, not interleaved
                try:
                    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
                except FileExistsError:
                    raise CliError(f"--out {self.shown} exists (another run may be writing "
                                   "it); pass --force to replace it") from None
                self.reserved = True
                if not self.parquet:
                    self._stream = os.fdopen(fd, "w", encoding="utf-8")
                    return TraceWriter(self._stream)
                os.close(fd)
            self.partial = out.with_name(f".{out.name}.{os.getpid()}{_PARTIAL}")
            return TraceWriter(self.partial)
        except OSError as e:
            self._drop()
            why = ("nothing reads this FIFO" if e.errno == errno.ENXIO else e.strerror or e)
            raise CliError(f"cannot write {self.shown}: {why}") from None

    def finish(self) -> bool:
        """Put what was written in place; True when --out now holds the runs. Nothing
        written: the reserved name is removed and any earlier file is left as it was."""
        if self._stream is not None:
            self._stream.close()
            self._stream = None
            if self.stream:
                return True
            self._drop()  # only if nothing was written
            return self.path.exists()
        if self.partial is None:
            return False
        partial, self.partial = self.partial, None
        try:
            if not partial.exists() or partial.stat().st_size == 0:
                partial.unlink(missing_ok=True)
                self._drop()
                return False
            if self.parquet:
                _to_parquet(partial, self.path)
            else:
                os.replace(partial, self.path)
        except Exception as e:  # the disk is full, a trace Parquet cannot hold, ...
            self._drop()
            why = getattr(e, "strerror", None) or one_line(e, with_type=False)
            raise CliError(f"cannot write {self.shown}: {why} (the runs are kept, as JSON "
                           f"Lines, in {partial})") from None
        self.reserved = False
        return True

    def _drop(self) -> None:
        if self.reserved:
            try:
                if self.path.stat().st_size == 0:
                    self.path.unlink()
            except OSError:
                pass
            self.reserved = False


def _open_stream(path: Path):
    """A character device or FIFO opened for writing; a FIFO that nobody reads is refused at
    once (ENXIO) instead of blocking."""
    import fcntl
    fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    if stat.S_ISREG(os.fstat(fd).st_mode):  # swapped for a regular file since the check
        os.close(fd)
        raise OSError(0, "it became a regular file; run again")
    fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~os.O_NONBLOCK)
    return os.fdopen(fd, "w", encoding="utf-8")


def _to_parquet(partial: Path, out: Path) -> None:
    """The JSON Lines runs in ``partial`` as one Parquet file at ``out`` (written beside it,
    then moved into place); ``partial`` is removed once ``out`` holds them."""
    from ..traces.parquet import traces_to_parquet
    from ..traces.records import read_traces
    traces = read_traces(partial, max_mb=None)  # what this run wrote, whatever its size
    tmp = out.with_name(f".{out.name}.{os.getpid()}.parquet{_PARTIAL}")
    try:
        traces_to_parquet(traces, tmp)
        os.replace(tmp, out)
    except ValueError as e:
        tmp.unlink(missing_ok=True)
        raise OSError(0, str(e)) from None
    partial.unlink()

