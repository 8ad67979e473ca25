"""The results store (see `study.store.store`)."""

from study.store.store import CTT_KINDS, DEFAULT_URL, Store

__all__ = ["CTT_KINDS", "DEFAULT_URL", "Store"]
