"""``params.yaml``: its schema, its loader and its one-line errors.

Every stage and every notebook reads the parameters through :func:`load_params`, which
validates the whole file with pydantic before anything runs: types, ranges, required and
unknown keys, and names that must exist (tasks, targets, encoders, zoo architectures).
An error is one line per problem, naming the key, the value and what is allowed::

    params.yaml: recognition.finetune.lr = 'fast': must be a number > 0

The file has shared blocks and one block per task (grouped by stage, as ``dvc.yaml``
lists them)::

    tasks:        the experiments dvc.yaml runs, each with the modules its stages use
    encoders:     the text encoders that turn labels into F-labels (all tasks)
    evaluation:   bootstrap and CI settings (all reports)
    recognition:  data / zoo / finetune / features / flabels of that task
    textqa:       the same five groups for extractive text QA

:func:`params_table` renders the schema as the README's params table.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

__all__ = [
    "ParamsError",
    "Params",
    "TaskEntry",
    "RecognitionParams",
    "TextQAParams",
    "EvaluationParams",
    "load_params",
    "params_table",
]

#: ``shuffled-ENCODER`` embeds the labels of a seeded random permutation of the samples:
#: F-labels from a real encoder that are independent of the true labels (a label-noise
#: control, which EMMS should give no weight).
SHUFFLED_PREFIX = "shuffled-"


class ParamsError(ValueError):
    """``params.yaml`` is missing, malformed, or names something that does not exist."""


class _Block(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


PositiveInt = Annotated[int, Field(ge=1)]
Seed = Annotated[int, Field(ge=0)]


class TaskEntry(_Block):
    """Which modules a task's stages run (``dvc.yaml`` lists them as the stages' deps)."""

    dataset: str = Field(description="embedded dataset: emms/datasets/DATASET.py, data/raw/DATASET")
    zoo: str = Field(description="zoo module: emms/models/ZOO.py")
    features: str = Field(description="feature-extraction module: emms/models/FEATURES.py")
    finetune: str = Field(description="fine-tuning module: emms/models/FINETUNE.py")
    reader: str = Field(
        description="module that reads the processed targets: emms/datasets/READER.py "
        "(the dataset module itself where it reads its own files)"
    )


class _TargetsBlock(_Block):
    """A task's ``data`` block: its targets, always a list (every task's data has them)."""

    targets: list[str] = Field(min_length=1, description="target datasets, in report order")

    @field_validator("targets", mode="before")
    @classmethod
    def _a_list(cls, value):
        if isinstance(value, str):
            raise ValueError(f"must be a list of target names, e.g. [{value}]")
        return value


class DataParams(_TargetsBlock):
    image_size: int = Field(
        32, ge=8, le=256, description="side of the model input (digits are 8x8, upscaled)"
    )
    seed: Seed = Field(0, description="train/test split, corruption and low-shot draws")


class ZooParams(_Block):
    models: list[dict[str, Any]] = Field(
        min_length=3, description="one pre-training recipe per model (emms/models/zoo.py Recipe)"
    )

    @field_validator("models")
    @classmethod
    def _unique_names(cls, value):
        names = [entry.get("name") for entry in value]
        if None in names or len(set(names)) != len(names):
            raise ValueError(f"every model needs a unique name; got {names}")
        return value

    def recipes(self):
        """The validated recipes (:class:`emms.models.zoo.Recipe`). Checked by the stages
        that build models, so that editing the zoo code does not rerun the others."""
        from emms.models.zoo import ZooError, recipes_from_config

        try:
            return recipes_from_config(self.models)
        except ZooError as error:
            raise ParamsError(f"params: zoo.models: {error}") from None


class FinetuneParams(_Block):
    epochs: PositiveInt = Field(description="epochs over the target's training split")
    lr: float = Field(gt=0, description="backbone learning rate (AdamW, cosine decay)")
    head_lr: float = Field(gt=0, description="learning rate of the new head")
    batch_size: PositiveInt = Field(description="fine-tuning batch size")
    weight_decay: float = Field(ge=0, description="AdamW weight decay")
    min_steps: int = Field(ge=0, description="train whole epochs until at least this many steps")
    seeds: list[Seed] = Field(
        min_length=2, description="fine-tuning seeds; >= 3 to split them for a reliability"
    )


class FeaturesParams(_Block):
    batch_size: PositiveInt = Field(256, description="images per forward pass")


class FlabelsParams(_Block):
    template: str = Field(description="class name -> text, must contain '{name}'")

    @field_validator("template")
    @classmethod
    def _has_name(cls, value):
        if "{name}" not in value:
            raise ValueError("must contain '{name}', e.g. 'a handwritten {name}'")
        return value


class _TaskBlock(_Block):
    """What every task's block has: a ``zoo`` whose entries are named."""

    @property
    def models(self) -> list[str]:
        return [entry["name"] for entry in self.zoo.models]


class RecognitionParams(_TaskBlock):
    data: DataParams
    zoo: ZooParams
    finetune: FinetuneParams
    features: FeaturesParams
    flabels: FlabelsParams


class ComputeParams(_Block):
    threads: PositiveInt = Field(
        2, description="torch threads in every training stage (results depend on it)"
    )
    deterministic: bool = Field(
        True, description="torch.use_deterministic_algorithms in training stages"
    )


class TextQADataParams(_TargetsBlock):
    seed: Seed = Field(0, description="draw of the questions from the pinned files")
    n_train: PositiveInt = Field(description="training questions per target (fine-tuning)")
    n_test: PositiveInt = Field(description="test questions per target (unseen topics)")


class TextZooParams(ZooParams):
    models: list[dict[str, Any]] = Field(
        min_length=3, description="one recipe per model (emms/models/text_zoo.py TextRecipe)"
    )

    def recipes(self):
        """The validated recipes (:class:`emms.models.text_zoo.TextRecipe`)."""
        from emms.models.text_zoo import TextZooError, recipes_from_config

        try:
            return recipes_from_config(self.models)
        except TextZooError as error:
            raise ParamsError(f"params: textqa.zoo.models: {error}") from None


class TextFinetuneParams(_Block):
    steps: PositiveInt = Field(description="optimizer steps (batches of training questions)")
    lr: float = Field(gt=0, description="encoder learning rate (AdamW, warm-up, linear decay)")
    head_lr: float = Field(gt=0, description="learning rate of the new start/end head")
    batch_size: PositiveInt = Field(description="fine-tuning batch size")
    weight_decay: float = Field(ge=0, description="AdamW weight decay")
    freeze_word_embeddings: bool = Field(
        True, description="keep the word-piece embedding table fixed in fine-tuning"
    )
    seeds: list[Seed] = Field(
        min_length=3, description="fine-tuning seeds; >= 3 for the split-seed reliability"
    )
    workers: PositiveInt = Field(
        1, description="processes fine-tuning at once (one thread each; same results)"
    )


class TextFlabelsParams(_Block):
    with_question: bool = Field(
        True, description="embed 'Q: question A: answer' (the paper) or the answer alone"
    )


class TextQAParams(_TaskBlock):
    data: TextQADataParams
    zoo: TextZooParams
    finetune: TextFinetuneParams
    features: FeaturesParams
    flabels: TextFlabelsParams


class EvaluationParams(_Block):
    n_boot: PositiveInt = Field(1000, description="bootstrap resamples of the zoo per tau")
    seed: Seed = Field(0, description="seed of the bootstrap")
    isa_allowance: dict[str, Annotated[float, Field(ge=0)]] = Field(
        min_length=1,
        description="per task, in its truth metric: the largest change of a model's truth "
        "another instruction set caused (benchmarks/isa_envelope.py --task TASK); part of "
        "the from-scratch envelope",
    )


#: The schema of each task's block; a task without a block here is not built yet.
TASK_PARAMS: dict[str, type[_Block]] = {
    "recognition": RecognitionParams,
    "textqa": TextQAParams,
}


class Params(_Block):
    """The validated ``params.yaml``."""

    tasks: dict[str, TaskEntry] = Field(
        min_length=1,
        description="the experiments dvc.yaml runs; each names its modules: dataset, zoo, "
        "features, finetune",
    )
    encoders: list[str] = Field(min_length=1, description="F-label encoders (all tasks)")
    compute: ComputeParams  # required: dvc.yaml lists it as a param of the training stages
    evaluation: EvaluationParams
    recognition: RecognitionParams | None = None
    textqa: TextQAParams | None = None

    @field_validator("encoders")
    @classmethod
    def _distinct(cls, value):
        if len(set(value)) != len(value):
            raise ValueError(f"repeats an encoder: {value}")
        return value

    def check_encoders(self) -> list[str]:
        """The encoder names, each checked against :data:`emms.models.flabels.ENCODERS`
        (by the stages that embed or read F-labels only, for the same reason as
        :meth:`ZooParams.recipes`)."""
        from emms.models.flabels import ENCODERS

        unknown = [n for n in self.encoders if n.removeprefix(SHUFFLED_PREFIX) not in ENCODERS]
        if unknown:
            raise ParamsError(
                f"params: encoders names unknown encoder(s) {unknown}; valid: "
                f"{sorted(ENCODERS)}, each optionally prefixed by {SHUFFLED_PREFIX!r}."
            )
        return list(self.encoders)

    def task(self, name: str):
        """The parameter block of task ``name``."""
        block = getattr(self, name, None) if name in TASK_PARAMS else None
        if name not in self.tasks or block is None:
            raise ParamsError(
                f"params.yaml has no task {name!r}; tasks: {sorted(self.tasks)} "
                "(each needs an entry under `tasks:` and a block of its own)."
            )
        return block


def _format_value(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _one_line(error: dict, path: Path) -> str:
    key = ".".join(str(part) for part in error["loc"]) or "(top level)"
    message = error["msg"].removeprefix("Value error, ")
    if error["type"] == "missing":
        return f"{path}: {key} is required but missing"
    if error["type"] == "extra_forbidden":
        return f"{path}: {key} is not a known key (a typo?); remove it"
    return f"{path}: {key} = {_format_value(error.get('input'))}: {message}"


def load_params(path: str | os.PathLike = "params.yaml") -> Params:
    """Read and validate ``params.yaml``.

    Raises:
        ParamsError: the file is missing or not YAML, or one or more keys are invalid;
            the message has one line per problem.
    """
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ParamsError(f"{path} not found; run from the project root.") from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(error, "problem", None) or "invalid YAML"
        raise ParamsError(f"{path}: not valid YAML{where}: {problem}.") from None
    if not isinstance(raw, dict):
        raise ParamsError(f"{path}: expected a mapping of parameter groups, got {raw!r}.")
    try:
        params = Params.model_validate(raw)
    except ValidationError as error:
        raise ParamsError("\n".join(_one_line(e, path) for e in error.errors())) from None
    for name in params.tasks:
        if name not in TASK_PARAMS:
            raise ParamsError(
                f"{path}: tasks.{name} is not a built task; built: {sorted(TASK_PARAMS)}."
            )
        if getattr(params, name) is None:
            raise ParamsError(f"{path}: tasks names {name!r} but there is no `{name}:` block.")
        if name not in params.evaluation.isa_allowance:
            raise ParamsError(
                f"{path}: evaluation.isa_allowance has no value for task {name!r}; measure "
                f"it with `python benchmarks/isa_envelope.py --task {name}`."
            )
    from emms.tasks import get_task

    for name in params.tasks:
        unknown = [t for t in params.task(name).data.targets if t not in get_task(name).targets]
        if unknown:
            raise ParamsError(
                f"{path}: {name}.data.targets names unknown dataset(s) {unknown}; "
                f"valid: {sorted(get_task(name).targets)}."
            )
    return params


def _rows(model: type[BaseModel], prefix: str):
    for name, field in model.model_fields.items():
        annotation = field.annotation
        nested = getattr(annotation, "__args__", (annotation,))
        block = next((a for a in nested if isinstance(a, type) and issubclass(a, _Block)), None)
        if block is not None and name not in ("tasks",):
            yield from _rows(block, f"{prefix}{name}.")
            continue
        kind = getattr(annotation, "__name__", str(annotation)).replace("typing.", "")
        limits = [
            f"{symbol} {getattr(meta, attr)}"
            for meta in field.metadata
            for attr, symbol in (("ge", ">="), ("gt", ">"), ("le", "<="), ("min_length", "len >="))
            if getattr(meta, attr, None) is not None
        ]
        default = "required" if field.is_required() else repr(field.default)
        yield (f"{prefix}{name}", kind, ", ".join(limits), default, field.description or "")


def params_table() -> str:
    """The README's params table, generated from the schema (markdown)."""
    lines = ["| key | type | allowed | default | meaning |", "| --- | --- | --- | --- | --- |"]
    for key, kind, limits, default, meaning in _rows(Params, ""):
        lines.append(f"| `{key}` | {kind} | {limits} | {default} | {meaning} |")
    return "\n".join(lines) + "\n"
