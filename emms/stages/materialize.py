"""``materialize-data``: write each embedded raw dataset if absent and check its pins.

Two pins guard the raw bytes: the SHA-256 of every file in the dataset's module (e.g.
:data:`emms.datasets.digits.RAW_SHA256`, changed only by a reviewed commit) and the folder
hash in ``data.dvc`` (what ``dvc pull`` and ``dvc status`` use). DVC rewrites ``data.dvc``
when ``dvc repro`` meets changed raw bytes, so the code pin is the one that decides: a
mismatch of either stops here with the fix, and every stage that reads the data checks the
code pin again.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import yaml

from emms.paths import raw_dir

__all__ = ["RawPinError", "dvc_dir_md5", "materialize"]


class RawPinError(RuntimeError):
    """The raw data, or ``data.dvc``, disagrees with the pin in the code."""


def dvc_dir_md5(folder: str | os.PathLike) -> str:
    """The hash DVC gives a directory: the md5 of the JSON list of its files' md5s
    (``[{"md5": ..., "relpath": ...}]``, sorted by path), with the ``.dir`` suffix."""
    folder = Path(folder)
    entries = [
        {
            "md5": hashlib.md5(path.read_bytes()).hexdigest(),
            "relpath": path.relative_to(folder).as_posix(),
        }
        for path in sorted(p for p in folder.rglob("*") if p.is_file())
    ]
    return hashlib.md5(json.dumps(entries, sort_keys=True).encode()).hexdigest() + ".dir"


def _embedded():
    from emms.datasets import digits, pydoc_qa

    return {"digits": digits, "pydoc_qa": pydoc_qa}


def materialize(dataset: str, root=".", dvc_file="data.dvc") -> str:
    """Create ``data/raw/DATASET`` if absent, verify it, and say what was done."""
    modules = _embedded()
    if dataset not in modules:
        raise RawPinError(f"unknown embedded dataset {dataset!r}; known: {sorted(modules)}.")
    module = modules[dataset]
    folder = raw_dir(dataset, root)
    created = not all((folder / name).is_file() for name in module.RAW_FILES)
    if created:
        module.materialize_raw(folder)
    module.load_raw(folder)  # raises RawDataError unless every file matches the code pin
    dvc_path = Path(root) / dvc_file
    outs = {out["path"]: out for out in yaml.safe_load(dvc_path.read_text())["outs"]}
    relative = folder.relative_to(root).as_posix()
    pinned = outs.get(relative, {}).get("md5")
    if pinned != module.RAW_DVC_MD5:
        raise RawPinError(
            f"{dvc_file} pins {relative} to {pinned}, but the code pins "
            f"{module.RAW_DVC_MD5} (emms/datasets/{dataset}.py): {dvc_file} was re-pinned "
            f"(DVC rewrites it when `dvc repro` meets changed raw bytes). Restore it with "
            f"`git checkout {dvc_file}`, delete {relative} and rerun `make repro`."
        )
    return f"{folder}: {'created from the package' if created else 'present'}; matches its pins"
