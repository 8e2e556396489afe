"""Many runs at once: logged runs as tables on DuckDB, a Hive-partitioned Parquet dataset,
read-only user SQL, and vLLM's speculative decoding metrics read in.

- ``tables``: traces -> a runs table and a steps table (Arrow);
- ``scan``: files and folders of traces read into them, bounded, one line per file left out;
- ``db``: the DuckDB database (totals, positions and the runs view derived in SQL), locked;
- ``queries``: the aggregates the Runs page and ``specviz runs`` show (α̂ and acceptance by
  position with Wilson intervals, tokens per step, speed-up against target-only runs);
- ``sandbox``: SQL a user types, read-only and bounded;
- ``dataset``: the Parquet dataset (pair=/drafter=/date= partitions), written and read;
- ``vllm``: vLLM's Prometheus text exposition -> α per position, tokens per step, drafts/s.

Nothing here imports streamlit. docs/runs.md describes the tables and the layout.
"""
