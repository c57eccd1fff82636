#!/usr/bin/env python3
"""Every public declaration of the library modules has a doc comment.

Scans Sources/{AnnalsStorage,Annals,AnnalsKafka}/**/*.swift for declarations that start with
`public` or `open` (types, functions, initializers, properties, subscripts, type aliases) and
checks that a `///` comment (or a `/** */` block) sits right above them, attributes allowed in
between. Members that implement a standard-library or Foundation requirement (`==`, `hash(into:)`,
`description`, `encode(to:)`, `init(from:)`, `makeAsyncIterator()`, `next()`...) inherit the
requirement's documentation and are skipped. Prints each undocumented declaration as
`file:line: declaration` and exits 1 when there is one.
"""
import os
import re
import sys

MODULES = ["AnnalsStorage", "Annals", "AnnalsKafka"]
DECLARATION = re.compile(
    r"^\s*(?:@[\w().:, ]+\s+)*(?:public|open)\s+(?:(?:static|final|class|nonisolated|override|mutating|convenience|indirect|required|lazy)\s+)*"
    r"(func|var|let|init|struct|class|enum|protocol|actor|typealias|subscript|case)\b\s*([^\s(<:{=]*)"
)
INHERITED = {
    "==", "<", "hash", "hashValue", "description", "debugDescription", "encode", "makeAsyncIterator", "next",
    "makeIterator", "errorDescription", "failureReason", "localizedDescription", "run",
    # Requirements of the project's own protocols and of literal/sequence protocols, documented there.
    "Element", "Failure", "members", "event", "failure",
}


def documented(lines, index):
    """True when a doc comment ends right above line `index` (attributes may sit between)."""
    cursor = index - 1
    while cursor >= 0:
        text = lines[cursor].strip()
        if text.startswith("///") or text.endswith("*/"):
            return True
        if text.startswith("@") or text.startswith("#if") or text.startswith("#endif"):
            cursor -= 1
            continue
        return False
    return False


def main(root):
    problems = []
    for module in MODULES:
        for directory, _, files in os.walk(os.path.join(root, "Sources", module)):
            for name in sorted(files):
                if not name.endswith(".swift"):
                    continue
                path = os.path.join(directory, name)
                with open(path, encoding="utf-8") as handle:
                    lines = handle.read().split("\n")
                for index, line in enumerate(lines):
                    match = DECLARATION.match(line)
                    if not match:
                        continue
                    kind, identifier = match.group(1), match.group(2)
                    if kind == "init" and ("from decoder" in line or "Literal value" in line):
                        continue
                    if kind == "func" and identifier == "":
                        continue  # an operator: documented by the protocol it implements
                    if identifier in INHERITED or (kind == "func" and identifier.strip("`") in INHERITED):
                        continue
                    if not documented(lines, index):
                        problems.append(f"{os.path.relpath(path, root)}:{index + 1}: {line.strip()}")
    for problem in problems:
        print(problem)
    if problems:
        print(f"{len(problems)} public declarations without a doc comment", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))))
