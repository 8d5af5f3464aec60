"""Where data lives: the storage contract, the embedded SQLite store and (later) MongoDB."""
