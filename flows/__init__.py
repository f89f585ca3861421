"""agentkpi's flows: the pipeline, its command line, Prefect flows, reports and delivery."""

import os

# Polars allocates through its own jemalloc, which by default hands freed pages back to the
# kernel at once (muzzy_decay_ms 0) and faults them in again for the next batch: on a full
# run a fifth of the CPU went to page faults and madvise. Keeping freed pages 3 s cut the
# year's full run by about a tenth, for about 0.2 GB more peak memory (10 s saved a little
# more but cost 0.8 GB; docs/benchmarks.md). jemalloc reads this once, when Polars is first
# imported, so it is set here, before anything imports Polars; a value already set wins.
os.environ.setdefault("_RJEM_MALLOC_CONF", "dirty_decay_ms:3000,muzzy_decay_ms:3000")
