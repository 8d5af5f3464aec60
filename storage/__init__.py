"""Where data lives: the storage contract (`storage.contract`), its records (`storage.models`),
and its backends: SQLite in one file (`storage.sqlite`, the default), MongoDB (`storage.mongo`,
production) and in memory (`storage.memory`, for fast tests)."""
