"""``python -m emms.datasets.paper [FILE ...]``: rewrite each FILE's dataset table
(default: README.md and docs/paper-scale.md) from :data:`PAPER_DATASETS`."""

import sys

from .registry import write_layout_table

for path in sys.argv[1:] or ["README.md", "docs/paper-scale.md"]:
    print(f"{path}: {'updated' if write_layout_table(path) else 'up to date'}")
