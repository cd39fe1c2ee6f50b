"""``python -m mesosdns``: the same as the ``mesos-dns`` command."""

from __future__ import annotations

import sys

from mesosdns.cli import main

if __name__ == "__main__":
    sys.exit(main())
