"""In-memory storage for tests, demos and the fake paths of examples (see ``store``)."""

from qzpay.storage.memory.store import MemoryStorage

__all__ = ["MemoryStorage"]
