"""An independent reader for Annals stores, written from format-spec.md (format version 7).

    from annals_reader import Store
    with Store("orders.annals") as store:
        for event in store.read_all():
            print(event.position, event.stream, event.type, event.payload)

    # A store with encrypted events (format version 7): give its key-encryption key.
    with Store("customers.annals", key="customers.kek") as store:
        for event in store.read_all():
            print(event.type, None if event.erased else event.payload)
"""

from .store import (AnnalsError, ArchiveUnavailableError, CorruptionError, Mark, NotAStoreError, RecordedEvent, Store,
                    SUPPORTED_VERSION, UnsupportedVersionError, current_boot_id)
from .keys import (KeyFileError, KeyRequiredError, KeyStore, WrongKeyError, keyed_tag, load_key_file,
                   subject_digest)

__all__ = ["AnnalsError", "ArchiveUnavailableError", "CorruptionError", "KeyFileError", "KeyRequiredError", "KeyStore",
           "Mark", "NotAStoreError", "RecordedEvent", "Store", "SUPPORTED_VERSION", "UnsupportedVersionError",
           "WrongKeyError", "current_boot_id", "keyed_tag", "load_key_file", "subject_digest"]
