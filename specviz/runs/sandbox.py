"""SQL a user types, run read-only over the runs data: one SELECT, bounded in time and rows.

The connection is already locked (specviz.runs.db.lock_down: external access off, no
extensions, configuration locked, memory limit and two threads); on top of that only one
statement of type SELECT (``WITH … SELECT`` included) runs, wrapped so that at most
``max_rows`` rows come back, and it is interrupted after ``timeout_s`` seconds. Anything
refused or failing raises SqlRefused with one plain line.
"""

from __future__ import annotations

import threading

import duckdb
import pandas as pd

from ..errors import one_line
from .db import RunsDB

MAX_SQL_CHARS = 20_000
MAX_ROWS = 1000
TIMEOUT_S = 10.0
TABLES = ("runs", "positions", "steps", "runs_base")


class SqlRefused(ValueError):
    """One plain line: why a query was not run, or why it failed."""


def check_sql(sql: str) -> str:
    """The one SELECT statement in ``sql`` (a trailing ';' allowed), or SqlRefused."""
    if not sql.strip():
        raise SqlRefused("the query is empty")
    if len(sql) > MAX_SQL_CHARS:
        raise SqlRefused(f"the query has {len(sql):,} characters; at most {MAX_SQL_CHARS:,}")
    try:
        statements = duckdb.extract_statements(sql)
    except duckdb.Error as e:
        raise SqlRefused(f"the query cannot be parsed ({one_line(e, 200, with_type=False)})"
                         ) from None
    if len(statements) != 1:
        raise SqlRefused(f"one statement at a time: this text holds {len(statements)}")
    kind = statements[0].type
    if kind != duckdb.StatementType.SELECT:
        name = str(kind).rsplit(".", 1)[-1]
        raise SqlRefused(f"only a SELECT runs here (read-only); this statement is {name}")
    return statements[0].query


def run_user_sql(db: RunsDB, sql: str, max_rows: int = MAX_ROWS,
                 timeout_s: float = TIMEOUT_S) -> tuple[pd.DataFrame, bool]:
    """(at most ``max_rows`` rows, whether more there were). Raises SqlRefused."""
    query = check_sql(sql).strip().rstrip(";")
    wrapped = f"SELECT * FROM ({query}\n) AS user_query LIMIT {int(max_rows) + 1}"
    cur = db.con.cursor()
    timer = threading.Timer(timeout_s, cur.interrupt)
    timer.start()
    try:
        table = cur.sql(wrapped).to_arrow_table()
    except duckdb.InterruptException:
        raise SqlRefused(f"stopped after {timeout_s:g} s (the limit for one query)") from None
    except duckdb.PermissionException:
        raise SqlRefused("refused: a query reads only the tables here (runs, positions, "
                         "steps); files, extensions and settings are off") from None
    except duckdb.OutOfMemoryException:
        raise SqlRefused("ran out of its memory limit; aggregate more, or select fewer "
                         "columns") from None
    except duckdb.Error as e:
        raise SqlRefused(one_line(e, 300, with_type=False)) from None
    except MemoryError:
        raise SqlRefused("does not fit in this server's memory") from None
    finally:
        timer.cancel()
        cur.close()
    more = table.num_rows > max_rows
    return table.slice(0, max_rows).to_pandas(), more
