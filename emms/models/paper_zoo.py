"""The paper's model zoos as configuration, loaded from local weights only.

``params/paper/<task>.yaml`` lists each zoo (recognition, captioning, vqa, textqa,
referring): one entry per model with its ``source`` library and that library's
``identifier``. This module builds the architecture without any download and loads the
weights from a local folder:

* ``timm``: ``timm.create_model(identifier, pretrained=False, **kwargs)`` + the folder's
  ``model.safetensors`` (or ``weights_file``);
* ``torchvision``: ``torchvision.models.get_model(identifier, weights=None, **kwargs)`` +
  ``model.safetensors`` (or ``weights_file``);
* ``transformers``: ``<auto_class>.from_pretrained(folder, local_files_only=True)``, the
  folder holding ``config.json`` and the weights (a Hub snapshot);
* ``open_clip``: identifier ``arch/tag``, ``open_clip.create_model(arch, pretrained=<file>)``
  with ``open_clip_model.safetensors`` or ``open_clip_pytorch_model.bin``.

The folder of a model is ``<weights root>/<name>`` where the weights root is
``$EMMS_WEIGHTS``, else the config's ``weights_dir``, else ``weights/``. Loading is strict:

* a missing file stops with :class:`WeightsMissing`, naming the files expected and the
  command that fetches them on a machine with network (:func:`fetch_command`);
* weights of another architecture stop with :class:`WeightsMismatch` and a summary of the
  missing, unexpected and wrongly shaped tensors;
* an unknown identifier or source stops with :class:`UnknownModel`.

``.safetensors`` files are read without unpickling; ``.bin`` / ``.pth`` files only through
``torch.load(weights_only=True)`` (tensors and plain containers, no code).
"""

from __future__ import annotations

import collections
import os
import shlex
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

__all__ = [
    "SOURCES",
    "PaperZooError",
    "UnknownModel",
    "WeightsMissing",
    "WeightsMismatch",
    "PaperModel",
    "PaperZoo",
    "load_zoo",
    "weights_root",
    "model_folder",
    "expected_files",
    "fetch_command",
    "build_architecture",
    "load_state_dict_file",
    "load_model",
    "check_weights",
    "pair_model",
]

SOURCES = ("timm", "torchvision", "transformers", "open_clip")
_FIELDS = {
    "name", "group", "source", "identifier", "kwargs", "weights_tag", "weights_file",
    "strip_prefix", "drop_prefixes", "auto_class", "model_type", "fetch", "note",
}  # fmt: skip
_REPO = Path(__file__).resolve().parents[2]


class PaperZooError(ValueError):
    """A zoo entry or its weights cannot be used; the message says why and the fix."""


class UnknownModel(PaperZooError):
    """The source library has no model of that identifier (or the source is unknown)."""


class WeightsMissing(PaperZooError, FileNotFoundError):
    """The local weights of a model are not there; nothing is downloaded at run time."""


class WeightsMismatch(PaperZooError):
    """The weights file does not fit the architecture (wrong model or wrong file)."""


@dataclass(frozen=True)
class PaperModel:
    """One zoo entry.

    Attributes:
        name: the model's name in the zoo (= its column in data/reference where there is
            one) and the name of its weights folder.
        source: one of :data:`SOURCES`.
        identifier: the source library's name: timm model name (``arch.tag``),
            torchvision model name, Hugging Face repo id, or open_clip ``arch/tag``.
        group: e.g. ``cnn`` / ``vit`` / ``encoder`` / ``decoder``.
        kwargs: constructor arguments (timm, torchvision).
        weights_tag: torchvision weights enum name used by the fetch command.
        weights_file: the file inside the folder (timm, torchvision; default
            ``model.safetensors``).
        strip_prefix: keep only the state-dict keys with this prefix, stripped.
        drop_prefixes: then drop keys starting with any of these.
        auto_class: transformers class used to load (default ``AutoModel``).
        model_type: transformers ``config.model_type`` the folder must hold (checked).
        fetch: a fetch instruction replacing the default (``{folder}`` and ``{root}``, the
            weights root, are substituted).
    """

    name: str
    source: str
    identifier: str
    group: str = ""
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    weights_tag: str = "DEFAULT"
    weights_file: str = ""
    strip_prefix: str = ""
    drop_prefixes: tuple[str, ...] = ()
    auto_class: str = "AutoModel"
    model_type: str = ""
    fetch: str = ""
    note: str = ""

    @classmethod
    def from_dict(cls, entry: Mapping[str, Any]) -> PaperModel:
        unknown = set(entry) - _FIELDS
        if unknown:
            raise PaperZooError(
                f"zoo entry {entry.get('name')!r}: unknown fields {sorted(unknown)}; "
                f"allowed: {sorted(_FIELDS)}."
            )
        for required in ("name", "source", "identifier"):
            if not entry.get(required):
                raise PaperZooError(f"zoo entry {dict(entry)}: field {required!r} is required.")
        if entry["source"] not in SOURCES:
            raise UnknownModel(
                f"zoo entry {entry['name']!r}: unknown source {entry['source']!r}; "
                f"choose one of {list(SOURCES)}."
            )
        values = dict(entry)
        values["kwargs"] = dict(values.get("kwargs") or {})
        values["drop_prefixes"] = tuple(values.get("drop_prefixes") or ())
        return cls(**values)


@dataclass(frozen=True)
class PaperZoo:
    """A parsed ``params/paper/<task>.yaml``."""

    task: str
    models: dict[str, PaperModel]
    weights_dir: str = "weights"
    groups: dict[str, dict[str, Any]] = field(default_factory=dict)
    pairs: dict[str, dict[str, str]] = field(default_factory=dict)
    reference: str = ""

    def group(self, name: str) -> list[PaperModel]:
        return [m for m in self.models.values() if m.group == name]

    @property
    def ranked(self) -> list[str]:
        """The names a selector ranks: the encoder/decoder pairs where the zoo has them
        (captioning: a pair is fine-tuned and scored as one model), else the models."""
        return list(self.pairs) if self.pairs else list(self.models)

    def entry(self, name: str) -> PaperModel:
        """The entry of a model or of a pair (:func:`pair_model`)."""
        if name in self.pairs:
            return pair_model(self, name)
        return self.models[name]


#: What a captioning pair's folder holds and how to make it: the release scored pairs
#: fine-tuned for captioning (on COCO), which are not public.
PAIR_FETCH = (
    "python -m emms.paper pair --weights {root} --pairs {name}  "
    "# builds the pair from the encoder's and the decoder's folders (new cross-attention); "
    "then fine-tune it on captions (the paper's release used COCO) and save_pretrained it, "
    "with the decoder's tokenizer and the encoder's image processor, to {folder}"
)


def pair_model(zoo: PaperZoo, name: str) -> PaperModel:
    """A captioning pair as a zoo entry: a transformers ``VisionEncoderDecoderModel``
    checkpoint in ``<weights>/<pair>`` (checked and loaded like any transformers entry)."""
    members = zoo.pairs[name]
    encoder, decoder = zoo.models[members["encoder"]], zoo.models[members["decoder"]]
    return PaperModel(
        name=name,
        source="transformers",
        identifier=f"{encoder.identifier} + {decoder.identifier}",
        group="pairs",
        auto_class="VisionEncoderDecoderModel",
        model_type="vision-encoder-decoder",
        fetch=PAIR_FETCH.replace("{name}", name),
        note=f"encoder {encoder.name}, decoder {decoder.name}",
    )


def load_zoo(path_or_task: str | os.PathLike) -> PaperZoo:
    """Read a zoo: a YAML path, or a task name (``params/paper/<task>.yaml``)."""
    path = Path(path_or_task)
    if not path.suffix:
        path = _REPO / "params" / "paper" / f"{path_or_task}.yaml"
    if not path.is_file():
        raise PaperZooError(f"zoo file {path} not found.")
    config = yaml.safe_load(path.read_text()) or {}
    models: dict[str, PaperModel] = {}
    for entry in config.get("models") or []:
        model = PaperModel.from_dict(entry)
        if model.name in models:
            raise PaperZooError(f"{path}: model {model.name!r} is listed twice.")
        models[model.name] = model
    if not models:
        raise PaperZooError(f"{path}: no models listed.")
    pairs = dict(config.get("pairs") or {})
    for pair, members in pairs.items():
        for role in ("encoder", "decoder"):
            if members.get(role) not in models:
                raise PaperZooError(
                    f"{path}: pair {pair!r} names unknown {role} {members.get(role)!r}."
                )
    return PaperZoo(
        task=str(config.get("task", path.stem)),
        models=models,
        weights_dir=str(config.get("weights_dir", "weights")),
        groups={k: dict(v or {}) for k, v in (config.get("groups") or {}).items()},
        pairs=pairs,
        reference=str(config.get("reference", "")),
    )


def weights_root(zoo: PaperZoo | None = None) -> Path:
    """``$EMMS_WEIGHTS``, else the zoo's ``weights_dir``, else ``weights``."""
    if os.environ.get("EMMS_WEIGHTS"):
        return Path(os.environ["EMMS_WEIGHTS"])
    return Path(zoo.weights_dir if zoo is not None else "weights")


def model_folder(model: PaperModel, root: str | os.PathLike | None = None) -> Path:
    return Path(root if root is not None else weights_root()) / model.name


def _open_clip_parts(model: PaperModel) -> tuple[str, str]:
    arch, _, tag = model.identifier.partition("/")
    return arch, tag


def expected_files(model: PaperModel) -> list[str]:
    """The files looked for in the model's folder (alternatives joined by ' or ')."""
    if model.source in ("timm", "torchvision"):
        return [model.weights_file or "model.safetensors"]
    if model.source == "transformers":
        return [
            "config.json",
            "model.safetensors or pytorch_model.bin (or their sharded "
            "index: model.safetensors.index.json)",
        ]
    return ["open_clip_model.safetensors or open_clip_pytorch_model.bin"]


def fetch_command(model: PaperModel, root: str | os.PathLike | None = None) -> str:
    """A shell command that puts the weights in place, on a machine with network."""
    folder = model_folder(model, root)
    q = shlex.quote
    if model.fetch:
        return model.fetch.format(folder=folder, root=folder.parent)
    if model.source == "transformers":
        return f"hf download {model.identifier} --local-dir {q(str(folder))}"
    if model.source == "open_clip":
        import open_clip

        arch, tag = _open_clip_parts(model)
        hub = (open_clip.get_pretrained_cfg(arch, tag) or {}).get("hf_hub", "").strip("/")
        if hub:
            return f"hf download {hub} --local-dir {q(str(folder))}"
        return (
            f"python -c \"import open_clip; open_clip.create_model('{arch}', "
            f"pretrained='{tag}', cache_dir='{folder}')\""
        )
    target = folder / (model.weights_file or "model.safetensors")
    kwargs = "".join(f", {k}={v!r}" for k, v in model.kwargs.items())
    if model.source == "timm":
        build = f"timm.create_model('{model.identifier}', pretrained=True{kwargs})"
        imports = "import timm"
    else:
        build = (
            f"torchvision.models.get_model('{model.identifier}', "
            f"weights='{model.weights_tag}'{kwargs})"
        )
        imports = "import torchvision"
    return (
        f'mkdir -p {q(str(folder))} && python -c "{imports}; from safetensors.torch '
        f"import save_model; save_model({build}, '{target}')\""
    )


def _missing(model: PaperModel, folder: Path, detail: str) -> WeightsMissing:
    return WeightsMissing(
        f"weights of {model.name!r} ({model.source} {model.identifier}) not found: {detail}. "
        f"Expected in {folder}: {', '.join(expected_files(model))}. Nothing is downloaded "
        f"at run time; on a machine with network run\n    {fetch_command(model, folder.parent)}\n"
        "then copy the folder here, or point $EMMS_WEIGHTS at the weights root."
    )


def build_architecture(model: PaperModel):
    """The randomly initialised architecture of a timm / torchvision entry (no download)."""
    if model.source == "timm":
        import timm

        arch = model.identifier.split(".")[0]
        if not timm.is_model(arch):
            raise UnknownModel(
                f"{model.name!r}: timm has no model {model.identifier!r} (see timm.list_models())."
            )
        return timm.create_model(model.identifier, pretrained=False, **model.kwargs)
    if model.source == "torchvision":
        import torchvision

        if model.identifier not in torchvision.models.list_models():
            raise UnknownModel(
                f"{model.name!r}: torchvision has no model "
                f"{model.identifier!r} (see torchvision.models.list_models())."
            )
        return torchvision.models.get_model(model.identifier, weights=None, **model.kwargs)
    raise PaperZooError(
        f"{model.name!r}: build_architecture is for timm and torchvision "
        f"entries, not {model.source}."
    )


def load_state_dict_file(path: Path) -> dict[str, Any]:
    """Tensors of a ``.safetensors`` file, or of a ``.bin``/``.pth`` read with
    ``torch.load(weights_only=True)`` (a ``state_dict``/``model`` entry is unwrapped)."""
    import torch

    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    state = torch.load(path, map_location="cpu", weights_only=True)
    for wrapper in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(wrapper), dict):
            state = state[wrapper]
    if not isinstance(state, dict):
        raise WeightsMismatch(f"{path} holds a {type(state).__name__}, not a state dict.")
    return state


def _summary(kind: str, keys: list[str], limit: int = 5) -> str:
    keys = sorted(keys, key=lambda k: k.endswith("num_batches_tracked"))  # weights first
    shown = ", ".join(keys[:limit]) + (f", ... ({len(keys)} in all)" if len(keys) > limit else "")
    return f"{kind} ({len(keys)}): {shown}"


def _load_strict(model: PaperModel, network, path: Path):
    try:
        state = load_state_dict_file(path)
    except (OSError, RuntimeError, ValueError) as error:
        if isinstance(error, PaperZooError):
            raise
        raise WeightsMismatch(
            f"{model.name!r}: {path} is not a readable weights file ({error})."
        ) from error
    if model.strip_prefix:
        state = {
            k[len(model.strip_prefix) :]: v
            for k, v in state.items()
            if k.startswith(model.strip_prefix)
        }
    if model.drop_prefixes:
        state = {k: v for k, v in state.items() if not k.startswith(model.drop_prefixes)}
    own = network.state_dict()
    shapes = [
        f"{k} {tuple(v.shape)} vs {tuple(own[k].shape)}"
        for k, v in state.items()
        if k in own and tuple(v.shape) != tuple(own[k].shape)
    ]
    unexpected = [k for k in state if k not in own]
    loaded = {own[k].data_ptr() for k in state if k in own}
    missing = [k for k in own if k not in state and own[k].data_ptr() not in loaded]
    if shapes or unexpected or missing:
        parts = [
            _summary(kind, keys)
            for kind, keys in (
                ("wrong shapes", shapes),
                ("missing from the file", missing),
                ("unexpected in the file", unexpected),
            )
            if keys
        ]
        raise WeightsMismatch(
            f"{path} does not fit {model.name!r} ({model.source} {model.identifier}); it is "
            f"probably the weights of another architecture. " + "; ".join(parts) + "."
        )
    if getattr(state, "_metadata", None) is None:
        # a safetensors file keeps no module versions, and MNASNet's loader refuses a
        # state without one: the tensors were saved from this architecture (the fetch
        # command's save_model), so its own versions describe them
        state = collections.OrderedDict(state)
        state._metadata = getattr(own, "_metadata", None)
    network.load_state_dict(state, strict=False)  # strict checks done above (tied weights)
    return network.eval()


def _load_transformers(model: PaperModel, folder: Path):
    import transformers

    if not (folder / "config.json").is_file():
        raise _missing(model, folder, f"no config.json in {folder}")
    if not any(
        (folder / f).is_file()
        for f in (
            "model.safetensors",
            "pytorch_model.bin",
            "model.safetensors.index.json",
            "pytorch_model.bin.index.json",
        )
    ):
        raise _missing(model, folder, f"no weights file in {folder}")
    if model.model_type:
        import json

        found = json.loads((folder / "config.json").read_text()).get("model_type")
        if found != model.model_type:
            raise WeightsMismatch(
                f"{folder}/config.json is a {found!r} model, but {model.name!r} "
                f"({model.identifier}) is a {model.model_type!r} model: wrong folder?"
            )
    cls = getattr(transformers, model.auto_class, None)
    if cls is None:
        raise UnknownModel(f"{model.name!r}: transformers has no class {model.auto_class!r}.")
    try:
        network, info = cls.from_pretrained(folder, local_files_only=True, output_loading_info=True)
    except (OSError, ValueError, RuntimeError, KeyError) as error:
        raise WeightsMismatch(
            f"{model.name!r}: transformers could not load {folder} with "
            f"{model.auto_class} ({type(error).__name__}: {error})."
        ) from error
    bad = [
        (kind, list(info.get(key) or []))
        for kind, key in (
            ("missing from the file", "missing_keys"),
            ("wrong shapes", "mismatched_keys"),
        )
    ]
    if any(keys for _, keys in bad):
        raise WeightsMismatch(
            f"{folder} does not fit {model.name!r} ({model.identifier}, {model.auto_class}): "
            + "; ".join(_summary(kind, [str(k) for k in keys]) for kind, keys in bad if keys)
            + ". It is probably the checkpoint of another model."
        )
    if info.get("unexpected_keys"):
        warnings.warn(
            f"{model.name!r}: ignored tensors of the checkpoint (a pre-training head?): "
            + _summary("unexpected", list(info["unexpected_keys"])),
            stacklevel=3,
        )
    return network.eval()


def _load_open_clip(model: PaperModel, folder: Path):
    import open_clip

    arch, _ = _open_clip_parts(model)
    if arch not in open_clip.list_models():
        raise UnknownModel(f"{model.name!r}: open_clip has no architecture {arch!r}.")
    files = [folder / f for f in ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")]
    found = [f for f in files if f.is_file()]
    if not found:
        raise _missing(model, folder, f"no checkpoint in {folder}")
    try:
        network = open_clip.create_model(arch, pretrained=str(found[0]))
    except (RuntimeError, KeyError, ValueError) as error:
        raise WeightsMismatch(f"{found[0]} does not fit open_clip {arch} ({error}).") from error
    return network.eval()


def load_model(model: PaperModel, root: str | os.PathLike | None = None):
    """Build ``model`` and load its local weights (eval mode), with no network access.

    Args:
        model: a zoo entry.
        root: the weights root (default :func:`weights_root`); the folder is
            ``root / model.name``.

    Raises:
        UnknownModel, WeightsMissing, WeightsMismatch: see the module docstring.
    """
    folder = model_folder(model, root)
    try:
        if model.source == "transformers":
            return _load_transformers(model, folder)
        if model.source == "open_clip":
            return _load_open_clip(model, folder)
        network = build_architecture(model)  # unknown identifiers fail before a missing file
        path = folder / (model.weights_file or "model.safetensors")
        if not path.is_file():
            raise _missing(model, folder, f"{path} does not exist")
        return _load_strict(model, network, path)
    except WeightsMismatch as error:
        raise WeightsMismatch(
            f"{error} Fix: replace what is in {folder} with {model.identifier}'s own weights; "
            f"on a machine with network: `{fetch_command(model, root)}`."
        ) from error.__cause__


def check_weights(model: PaperModel, root: str | os.PathLike | None = None) -> Path:
    """Check, without building or loading anything, that ``model``'s identifier is known
    to its library and that its weights files are in place (a run's pre-flight check).
    For transformers models only the files are checked here: whether a hub identifier
    exists cannot be known offline; the ``model_type`` of the folder's config is checked
    when the model loads.

    Returns:
        The model's folder.

    Raises:
        UnknownModel: the library has no such model (timm, torchvision, open_clip).
        WeightsMissing: a file of :func:`expected_files` is not there.
    """
    folder = model_folder(model, root)
    if model.source == "timm":
        import timm

        if not timm.is_model(model.identifier.split(".")[0]):
            raise UnknownModel(
                f"{model.name!r}: timm has no model {model.identifier!r} (see timm.list_models())."
            )
    elif model.source == "torchvision":
        import torchvision

        if model.identifier not in torchvision.models.list_models():
            raise UnknownModel(
                f"{model.name!r}: torchvision has no model "
                f"{model.identifier!r} (see torchvision.models.list_models())."
            )
    if model.source in ("timm", "torchvision"):
        path = folder / (model.weights_file or "model.safetensors")
        if not path.is_file():
            raise _missing(model, folder, f"{path} does not exist")
    elif model.source == "transformers":
        if not (folder / "config.json").is_file():
            raise _missing(model, folder, f"no config.json in {folder}")
        weights = ("model.safetensors", "pytorch_model.bin", "model.safetensors.index.json",
                   "pytorch_model.bin.index.json")  # fmt: skip
        if not any((folder / f).is_file() for f in weights):
            raise _missing(model, folder, f"no weights file in {folder}")
    else:
        import open_clip

        arch, _ = _open_clip_parts(model)
        if arch not in open_clip.list_models():
            raise UnknownModel(f"{model.name!r}: open_clip has no architecture {arch!r}.")
        files = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")
        if not any((folder / f).is_file() for f in files):
            raise _missing(model, folder, f"no checkpoint in {folder}")
    return folder


TASKS = ("recognition", "captioning", "vqa", "textqa", "referring")
BEGIN, END = "<!-- BEGIN paper-zoo table -->", "<!-- END paper-zoo table -->"


def render_zoo_table(tasks=TASKS) -> str:
    """The Markdown table of every zoo (task, name, group, source, identifier, folder)."""
    rows = [
        "| task | model | group | source | identifier | weights folder |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for task in tasks:
        zoo = load_zoo(task)
        for m in zoo.models.values():
            ident = m.identifier + (f" ({m.weights_tag})" if m.source == "torchvision" else "")
            rows.append(
                f"| {task} | `{m.name}` | {m.group or '-'} | {m.source} | `{ident}` | "
                f"`{zoo.weights_dir}/{m.name}/` |"
            )
    return "\n".join(rows) + "\n"


def write_zoo_table(path: str | os.PathLike) -> bool:
    """Replace the text between the zoo-table markers of ``path``; True if it changed."""
    from emms.cache import atomic_write_text

    path = Path(path)
    text = path.read_text(encoding="utf-8")
    if BEGIN not in text or END not in text:
        raise ValueError(f"{path} has no {BEGIN} ... {END} markers.")
    head, rest = text.split(BEGIN, 1)
    tail = rest.split(END, 1)[1]
    new = f"{head}{BEGIN}\n{render_zoo_table()}{END}{tail}"
    if new != text:
        atomic_write_text(path, new)
    return new != text


def _main(argv: list[str] | None = None) -> int:
    """``python -m emms.models.paper_zoo fetch <task or yaml> [...]``: print fetch commands;
    ``python -m emms.models.paper_zoo docs [FILE]``: rewrite FILE's zoo table."""
    import sys

    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["docs"]:
        path = args[1] if len(args) > 1 else "docs/paper-scale.md"
        print(f"{path}: {'updated' if write_zoo_table(path) else 'up to date'}")
        return 0
    if len(args) < 2 or args[0] != "fetch":
        print("usage: python -m emms.models.paper_zoo fetch <task|params/paper/X.yaml> ...")
        print("       python -m emms.models.paper_zoo docs [docs/paper-scale.md]")
        return 2
    for target in args[1:]:
        zoo = load_zoo(target)
        root = weights_root(zoo)
        print(f"# {zoo.task}: weights root {root}")
        for model in zoo.models.values():
            print(fetch_command(model, root))
        for pair in zoo.pairs:  # after their encoders and decoders
            print(fetch_command(pair_model(zoo, pair), root))
    return 0


if __name__ == "__main__":
    raise SystemExit(_main())
