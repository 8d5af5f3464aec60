"""The in-memory store: the whole storage contract over plain dicts, for tests and development only.

It keeps nothing on disk and nothing outlives the process, so it is never a place for money. No
setting selects it: a test passes it in (`Services(store_override=MemoryStore())` or
`create_app(store=...)`), as tests/unit/ does to run the service layer in milliseconds. The real
backends stay `storage.sqlite` and `storage.mongo`; the contract suite runs on all three.
"""

from storage.memory.store import MemoryStore
from storage.memory.unit_of_work import MemoryUnitOfWork

__all__ = ["MemoryStore", "MemoryUnitOfWork"]
