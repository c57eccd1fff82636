"""An independent reader for Annals stores, written from format-spec.md (format version 2).

    from annals_reader import Store
    with Store("orders.annals") as store:
        for event in store.read_all():
            print(event.position, event.stream, event.type, event.payload)
"""

from .store import (AnnalsError, CorruptionError, NotAStoreError, RecordedEvent, Store,
                    SUPPORTED_VERSION, UnsupportedVersionError)

__all__ = ["AnnalsError", "CorruptionError", "NotAStoreError", "RecordedEvent", "Store",
           "SUPPORTED_VERSION", "UnsupportedVersionError"]
