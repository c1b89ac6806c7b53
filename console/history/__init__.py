"""History: what every watched server did, kept on disk, summarised and replayed.

Headless core, fed by whoever watches a server (``monitor``, ``record``, the
TUI's sampler):

- :mod:`console.history.store` — the SQLite file (WAL, one row per sample with
  the raw ``vllm:`` page needed to recompute any window, events, retention);
- :mod:`console.history.events` — events and alerts detected from samples and
  log lines, with the thresholds of the config file;
- :mod:`console.history.recorder` — samples in, rows and events out, alert hooks;
- :mod:`console.history.summary` — ``vllm-console history``'s per-server figures.
"""
