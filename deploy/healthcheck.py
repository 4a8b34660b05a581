"""The image's HEALTHCHECK: GET $HEALTHCHECK_URL (default: serve's /readyz); 0 when it answers
200, else 1. Standard library only (the slim image has no curl)."""

import os
import sys
import urllib.error
import urllib.request

URL = os.environ.get("HEALTHCHECK_URL", "http://127.0.0.1:8000/readyz")


def main() -> int:
    try:
        with urllib.request.urlopen(URL, timeout=4) as response:  # noqa: S310 (our own URL)
            return 0 if response.status == 200 else 1
    except (urllib.error.URLError, OSError) as exc:
        print(f"{URL}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
