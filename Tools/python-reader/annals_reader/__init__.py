"""An independent reader for Annals stores, written from format-spec.md (format version 5).

    from annals_reader import Store
    with Store("orders.annals") as store:
        for event in store.read_all():
            print(event.position, event.stream, event.type, event.payload)
"""

from .store import (AnnalsError, ArchiveUnavailableError, CorruptionError, Mark, NotAStoreError, RecordedEvent, Store,
                    SUPPORTED_VERSION, UnsupportedVersionError, current_boot_id)

__all__ = ["AnnalsError", "ArchiveUnavailableError", "CorruptionError", "Mark", "NotAStoreError", "RecordedEvent", "Store",
           "SUPPORTED_VERSION", "UnsupportedVersionError", "current_boot_id"]
