"""``python -m emms.datasets.paper [FILE]``: rewrite FILE's dataset table (default
docs/paper-scale.md) from :data:`PAPER_DATASETS`."""

import sys

from .registry import write_layout_table

path = sys.argv[1] if len(sys.argv) > 1 else "docs/paper-scale.md"
print(f"{path}: {'updated' if write_layout_table(path) else 'up to date'}")
