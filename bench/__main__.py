"""`make bench`: every benchmark, one after the other."""

from __future__ import annotations

import sys

from bench import search


def main() -> int:
    return search.main(sys.argv[1:])


if __name__ == "__main__":
    raise SystemExit(main())
