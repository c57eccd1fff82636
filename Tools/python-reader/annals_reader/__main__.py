"""`python -m annals_reader dump STORE [--stream NAME | --type T... --tag K...] [--backwards] [--from N] [--limit N]
[--key-file F]`: the same JSON Lines as `annals dump` (format-spec.md §12). On corruption: the events before it,
then a message on stderr and exit status 1. A store with a key store (`keys`, format version 7)
needs its key file (`--key-file`): without it, like `annals dump`, nothing is printed and the
exit status is 1. `--type`/`--tag` filter `$all` here (this reader
does not use the query entries), so on a damaged store they stop at the first damage, where
`annals dump` reads only the frames the query index names."""

import argparse
import itertools
import os
import sys

from .dump import event_line
from .keys import KEY_STORE_NAME, KeyRequiredError, load_key_file
from .store import AnnalsError, Store


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m annals_reader")
    commands = parser.add_subparsers(dest="command", required=True)
    dump = commands.add_parser("dump", help="print events as JSON Lines, like `annals dump`")
    dump.add_argument("store")
    dump.add_argument("--stream", help="only this stream, in revision order (through the index files)")
    dump.add_argument("--backwards", action="store_true", help="newest first")
    dump.add_argument("--from", dest="start", type=int, help="first position ($all) or revision (--stream)")
    dump.add_argument("--limit", type=int, help="at most this many events")
    dump.add_argument("--type", dest="types", action="append", default=[], help="only events of this type (repeatable: any of)")
    dump.add_argument("--tag", dest="tags", action="append", default=[], help="only events carrying this tag (repeatable: all of)")
    dump.add_argument("--key-file", help="the store's key-encryption key file (format version 7: encrypted events)")
    arguments = parser.parse_args(argv)

    output = sys.stdout.buffer
    try:
        key = load_key_file(arguments.key_file) if arguments.key_file is not None else None
        if key is None and os.path.isdir(os.path.join(arguments.store, "segments")) \
                and os.path.exists(os.path.join(arguments.store, KEY_STORE_NAME)):
            raise KeyRequiredError(f"{arguments.store} has a key store (encrypted events): give its key with --key-file")
        with Store(arguments.store, key=key) as store:
            if arguments.stream is not None:
                events = (store.read_stream_backwards(arguments.stream, arguments.start) if arguments.backwards
                          else store.read_stream(arguments.stream, arguments.start or 0))
            else:
                events = (store.read_all_backwards(arguments.start) if arguments.backwards
                          else store.read_all(arguments.start or 0))
                if arguments.types or arguments.tags:
                    # A query of one item (§7.7), answered here by filtering $all.
                    events = (e for e in events if (not arguments.types or e.type in arguments.types)
                              and all(tag in e.tags for tag in arguments.tags))
            if arguments.limit is not None:
                events = itertools.islice(events, max(arguments.limit, 0))
            for event in events:
                output.write(event_line(event))
            if store.damage is not None:
                # Damage in the last segment (§3.4): the events before it are printed, and the
                # dump fails, also when --limit stopped the read before it.
                raise store.damage
    except AnnalsError as error:
        output.flush()
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
