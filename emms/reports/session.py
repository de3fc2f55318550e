"""One report, section by section: what the experiment notebooks call.

A notebook is a sequence of markdown cells (the paper's reasoning) and one-line calls to a
:class:`ReportSession` (the numbers). Each section computes from the cached outputs of the
DVC stages, saves its tables (CSV + markdown) and figures (PNG + SVG) into the staging
folder that :func:`emms.reports.notebook.run_notebook` moves into ``reports/`` once every
cell has run, and *displays* what a reader sees: tables as HTML (never truncated, no index
column), figures as embedded PNG, generated text as markdown. Sections return ``None`` so
a notebook cell prints nothing else. Every warning a section raises is recorded (with the
model, target and selector that raised it, where known) and shown in one table by
:meth:`ReportSession.warnings_table` instead of on stderr.
"""

from __future__ import annotations

import functools
import itertools
import json
import os
import warnings
from pathlib import Path

os.environ.setdefault("TQDM_DISABLE", "1")  # progress bars belong to stage terminals

# what importing the stack warns (e.g. tqdm.auto without ipywidgets) goes to the table too
with warnings.catch_warnings(record=True) as _IMPORT_WARNINGS:
    warnings.simplefilter("always")
    import numpy as np
    import pandas as pd

    from emms.cache import atomic_write_text, read_sidecar
    from emms.params import load_params
    from emms.paths import TaskPaths
    from emms.tasks import get_task

    from . import discussion as discussion_text
    from . import experiment, plotting

__all__ = ["ReportOutputs", "ReportSession", "show"]

_TABLE_IDS = itertools.count()

REFERENCE = Path("data/reference")
#: the paper's published fine-tuning tables: file -> (what, scale to points)
PAPER_TABLES = {
    "finetune_cnn_classification.csv": ("recognition, CNN zoo (top-1 accuracy, %)", 1.0, "CNN zoo"),
    "finetune_vit_classification.csv": ("recognition, ViT zoo (accuracy, %)", 1.0, "ViT zoo"),
    "finetune_captioning_bleu4.csv": ("captioning (BLEU-4 × 100)", 100.0, "captioning"),
}
#: the two selectors the speed-up compares, timed with repeats
TIMED = ("emms", "logme_flabel")

pd.set_option("display.max_colwidth", None)
pd.set_option("display.max_columns", None)
pd.set_option("display.width", None)


def _html_table(frame: pd.DataFrame, floatfmt: str = "{:.3f}") -> str:
    """A table as HTML: every cell whole, no index column, NaN as an en dash, text columns
    aligned left and numbers right."""
    frame = frame.copy()
    frame.columns.name = None
    name = f"emms-table-{next(_TABLE_IDS)}"
    html = frame.to_html(
        index=False,
        border=0,
        na_rep="–",
        float_format=floatfmt.format,
        justify="left",
        escape=True,
        classes=name,
    )
    text = [
        i + 1
        for i, column in enumerate(frame.columns)
        if not pd.api.types.is_numeric_dtype(frame[column])
    ]
    rules = "".join(
        f".{name} td:nth-child({i}), .{name} th:nth-child({i}) {{text-align: left;}}" for i in text
    )
    return (f"<style>{rules}</style>" if rules else "") + html


def show(*items) -> None:
    """Display tables (HTML), figures (embedded PNG, then closed) and markdown strings."""
    import matplotlib.pyplot as plt
    from IPython.display import HTML, Image, Markdown, display

    for item in items:
        if isinstance(item, pd.DataFrame):
            display(HTML(_html_table(item)))
        elif isinstance(item, tuple) and isinstance(item[0], pd.DataFrame):
            display(HTML(_html_table(*item)))
        elif isinstance(item, bytes):
            display(Image(data=item, format="png"))
        elif hasattr(item, "savefig"):
            import io

            buffer = io.BytesIO()
            item.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
            plt.close(item)
            display(Image(data=buffer.getvalue(), format="png"))
        elif isinstance(item, str):
            display(Markdown(item))
        elif item is not None:
            display(item)


def _section(method):
    """Record the warnings a section raises (``self.caught``) instead of printing them."""

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        with warnings.catch_warnings(record=True) as recorded:
            warnings.simplefilter("always")
            result = method(self, *args, **kwargs)
        self.caught += [
            experiment.warning_row(
                w, dataset="–", model="–", selector=f"(report: {method.__name__.strip('_')})"
            )
            for w in recorded
        ]
        return result

    return wrapper


class ReportOutputs:
    """Where a report's tables (CSV + markdown) and figures (PNG + SVG) go: ``self.out``."""

    out: Path

    def save_table(self, frame: pd.DataFrame, name: str, index: bool = False) -> pd.DataFrame:
        folder = self.out / "tables"
        atomic_write_text(folder / f"{name}.csv", frame.to_csv(index=index))
        markdown = frame.to_markdown(index=index, floatfmt=".3f") + "\n"
        atomic_write_text(folder / f"{name}.md", markdown)
        return frame

    def save_figure(self, fig, name: str) -> bytes:
        """Save ``fig`` as PNG and SVG, close it, and return the PNG (to display)."""
        import matplotlib.pyplot as plt

        paths = plotting.save_figure(fig, self.out / "figures", name)
        plt.close(fig)
        return paths[0].read_bytes()


class ReportSession(ReportOutputs):
    """The report of one task, written to ``output_dir`` (``figures/``, ``tables/``,
    ``metrics.json``)."""

    def __init__(self, task: str, output_dir: str | Path, root: str | Path = "."):
        self.caught: list[dict] = [
            experiment.warning_row(w, dataset="–", model="–", selector="(import)")
            for w in _IMPORT_WARNINGS
        ]
        self.speed: dict | None = None
        self._setup(task, output_dir, root)

    @_section
    def _setup(self, task: str, output_dir: str | Path, root: str | Path) -> None:
        self.root = Path(root)
        self.params = load_params(self.root / "params.yaml")
        self.task = get_task(task)
        self.block = self.params.task(task)
        self.paths = TaskPaths(task, self.root)
        self.out = Path(output_dir)
        self.targets = list(self.block.data.targets)
        self.models = list(self.block.models)
        self.encoders = self.params.check_encoders()
        self.evaluation_params = self.params.evaluation

    @functools.cached_property
    def split_seed_taus(self) -> pd.DataFrame:
        """The truth ranked by one half of the seeds against the other, every split
        (computed once: the reproducibility section and the metrics both read it)."""
        return experiment.split_seed_taus(self.truth_table, self.task.truth_metric)

    @property
    def truth_label(self) -> str:
        """The truth metric as axes name it, e.g. "test accuracy", "SQuAD F1"."""
        return self.task.truth_metric_label.removesuffix(" after fine-tuning")

    # --- sections -------------------------------------------------------------------------
    @_section
    def truth(self) -> None:
        """Fine-tuning truth: per model mean and seed std; per dataset the zoo's spread over
        the seed noise."""
        truth = experiment.load_truth(self.task, self.paths)
        truth = truth[truth.dataset.isin(self.targets) & truth.model.isin(self.models)]
        self.truth_table = truth
        self.summary = experiment.truth_summary(truth, self.task.truth_metric)
        columns = [
            "zoo_range",
            "zoo_std",
            "mean_seed_std",
            "range_over_seed_std",
            "zoo_std_over_seed_std",
        ]
        self.spread = self.summary.groupby("dataset")[columns].first()
        self.save_table(self.spread.reset_index(), "truth_spread")
        self.save_table(self.summary[["dataset", "model", "mean", "std", "seeds"]], "truth")
        figure = plotting.plot_truth(self.summary, self.truth_label, upper=self.task.truth_scale)
        show(self.spread.reset_index(), self.save_figure(figure, "truth"))

    @_section
    def truth_secondary(self) -> None:
        """Every truth column beyond the main metric (e.g. exact match beside F1), mean and
        seed std per model."""
        extra = list(self.task.truth_columns[4:])
        main = self.summary[["dataset", "model", "mean", "std"]].rename(
            columns={"mean": self.task.truth_metric, "std": f"{self.task.truth_metric}_std"}
        )
        table = main.merge(experiment.secondary_truth(self.truth_table, extra))
        self.save_table(table, "truth_all_metrics")
        show(table)

    @_section
    def reproducibility(self) -> None:
        """How far the truth can be trusted: the split-seed reliability (the ceiling of any
        selector's tau), the models another instruction set can reorder, the machine."""
        from .stability import isa_sensitivity

        splits = self.split_seed_taus
        self.save_table(splits, "truth_split_seed_tau")
        reliability = experiment.split_seed_reliability(splits)
        ceiling = reliability.rename("split-seed weighted tau").reset_index()
        ceiling = ceiling.rename(columns={"index": "dataset"})
        self.save_table(ceiling, "truth_reliability")
        flags = isa_sensitivity(self.summary, self.task.name, self.root)
        self.save_table(flags, "isa_sensitivity")
        moved = flags[flags["can reorder"]]
        note = (
            f"{len(moved)} of {len(flags)} (model, target) truths moved by more than the "
            "zoo's resolution (median gap between neighbouring models) under a simulated "
            "instruction set (benchmarks/isa_envelope.py); they can swap places with a "
            "neighbour on another CPU: "
            + (", ".join(f"{r.model} on {r.dataset}" for r in moved.itertuples()) or "none")
            + "."
            if len(flags)
            else "No instruction-set measurement for this task yet."
        )
        machine = experiment.machine_table()
        self.save_table(machine, "machine")
        show(ceiling, "Every split of the seeds into two halves:", splits, note, flags, machine)

    @_section
    def load_inputs(self) -> None:
        self.inputs = {
            dataset: experiment.load_target_inputs(
                self.task, self.block, dataset, self.encoders, root=self.root
            )
            for dataset in self.targets
        }

    @_section
    def encoders_table(self) -> None:
        rows = []
        for name in self.encoders:
            meta = read_sidecar(self.paths.flabels(self.targets[0], name))
            rows.append(
                {
                    "encoder": name,
                    "width": meta["shape"][1],
                    "what it is": meta["description"],
                    "template": meta.get("template"),
                }
            )
        show(pd.DataFrame(rows))

    @_section
    def datasets_table(self) -> None:
        """Every target: its size, what it is and one F-label text (and, for class
        labels, the classes)."""
        rows = []
        for dataset in self.targets:
            target = self.task.load_target(self.paths, dataset)
            row = {
                "dataset": dataset,
                "N (train)": len(target.train_labels),
                "N (test)": len(target.test_labels),
                "what it is": target.description,
                "an F-label text": self.task.label_texts(self.block, target)[0],
            }
            if target.class_names:
                row["classes"] = len(target.class_names)
                row["class names"] = ", ".join(target.class_names)
            rows.append(row)
        show(pd.DataFrame(rows))

    @_section
    def sample_size(self) -> None:
        dims = pd.DataFrame(
            [
                {"dataset": d, "model": m, "N": len(f), "D": f.shape[1]}
                for d, x in self.inputs.items()
                for m, f in x.features.items()
            ]
        )
        dims["D >= N - 1"] = dims["D"] >= dims["N"] - 1
        self.dims = dims
        self.save_table(dims, "sample_size")
        wide = dims.pivot(index="model", columns="dataset", values="D").reindex(self.models)
        n = dims.groupby("dataset")["N"].first()
        table = pd.DataFrame({"model": wide.index})
        for dataset in wide.columns:
            table[f"D ({dataset}, N = {n[dataset]})"] = [
                f"{d} ✗" if d >= n[dataset] - 1 else str(d) for d in wide[dataset]
            ]
        show(table, "✗: D ≥ N − 1 on that target (EMMS's least-squares fit collapses).")

    @_section
    def score(self) -> None:
        """Every selector on every (target, model): independent jobs, in this process or
        as Dask tasks when ``EMMS_DASK`` is set (:mod:`emms.reports.scoring`)."""
        from .scoring import score_pairs

        self.scores, self.weights, caught = score_pairs(
            self.task.name, self.targets, self.models, self.out, self.root, progress=False
        )
        self.caught += caught
        self.save_table(self.scores, "scores")
        self.save_table(self.weights, "emms_weights")
        for dataset in self.targets:
            part = self.scores[self.scores.dataset == dataset]
            table = part.pivot(index="label", columns="model", values="score")
            table = table.reindex(
                index=list(dict.fromkeys(part.label)),
                columns=[m for m in self.models if m in table.columns],
            )
            show(f"**{dataset}**: score of every model (columns) by every selector (rows)")
            show((table.reset_index().rename(columns={"label": "selector"}), "{:.4g}"))

    @_section
    def evaluate(self) -> None:
        self.evaluation = experiment.evaluate_methods(
            self.scores,
            self.summary,
            n_boot=self.evaluation_params.n_boot,
            seed=self.evaluation_params.seed,
        )
        self.save_table(self.evaluation, "evaluation")
        tau = self.evaluation[self.evaluation.metric == "weighted_tau"].copy()
        tau["tau_w"] = [
            f"{v:+.3f} ± {s:.3f}" if np.isfinite(s) else f"{v:+.3f} ± n/a"
            for v, s in zip(tau["value"], tau["std"], strict=True)
        ]
        table = tau.pivot(index="label", columns="dataset", values="tau_w")
        mean = tau.groupby("label")["value"].mean().sort_values(ascending=False)
        table = table.reindex(mean.index)
        table["mean"] = mean.map("{:+.3f}".format)
        table.columns.name = None
        self.save_table(table.reset_index(), "weighted_tau")
        show(
            table.reset_index().rename(columns={"label": "selector"}),
            self.save_figure(plotting.plot_tau(self.evaluation), "weighted_tau"),
        )

    @_section
    def other_metrics(self) -> None:
        other = self.evaluation[self.evaluation.metric.isin(["kendall_tau", "pearson", "rel@1"])]
        table = other.pivot_table(index="label", columns=["metric", "dataset"], values="value")
        table.columns = [f"{metric} · {dataset}" for metric, dataset in table.columns]
        table = table.reset_index().rename(columns={"label": "selector"})
        self.save_table(table, "other_metrics")
        show(table)

    @_section
    def paired(self) -> None:
        """EMMS minus every other selector, per target, paired bootstrap; wins across."""
        n_boot, seed = self.evaluation_params.n_boot, self.evaluation_params.seed
        self.paired_table, self.wins = experiment.paired_differences(
            self.scores, self.summary, "emms", n_boot=n_boot, seed=seed
        )
        evidence = (
            [m for m in ("emms", "logme_flabel") if m in set(self.scores.method)]
            if "emms_evidence" in set(self.scores.method)
            else []
        )
        self.paired_evidence, self.wins_evidence = (
            experiment.paired_differences(
                self.scores, self.summary, "emms_evidence", evidence, n_boot=n_boot, seed=seed
            )
            if evidence
            else (pd.DataFrame(columns=["dataset", "baseline"]), {})
        )
        self.save_table(self.paired_table, "paired_differences")
        table = self.paired_table.copy()
        table["cell"] = [
            f"{r.difference:+.3f} [{r.low:+.3f}, {r.high:+.3f}]"
            if np.isfinite(r.low)
            else f"{r.difference:+.3f} (no interval)"
            if np.isfinite(r.difference)
            else "n/a"
            for r in table.itertuples()
        ]
        wide = table.pivot(index="label", columns="dataset", values="cell")
        wide = wide.reindex(index=list(dict.fromkeys(table.label)))
        wide["across targets"] = [
            _wins_cell(self.wins.get(b)) for b in dict.fromkeys(table.baseline)
        ]
        wide = wide.reset_index().rename(columns={"label": "EMMS (exact) minus"})
        self.save_table(wide, "paired_wins")
        show(wide)

    @_section
    def scores_vs_truth(self, methods=("emms", "logme_flabel")) -> None:
        fig = plotting.plot_scores_vs_truth(
            self.scores, self.summary, list(methods), f"fine-tuned {self.truth_label}"
        )
        show(self.save_figure(fig, "scores_vs_truth"))

    @_section
    def emms_weights(self) -> None:
        collapsed = set(
            map(tuple, self.dims.loc[self.dims["D >= N - 1"], ["dataset", "model"]].to_numpy())
        )
        figure = self.save_figure(plotting.plot_weights(self.weights, collapsed), "emms_weights")
        fine = self.weights.merge(self.dims, on=["dataset", "model"])
        fine = fine[~fine["D >= N - 1"]]
        mean_weights = fine.groupby(["dataset", "encoder"])["weight"].mean().unstack()
        table = mean_weights.reset_index()
        self.save_table(table, "emms_mean_weights")
        show(
            figure,
            "Mean weight per encoder and target, over the models whose fit did not collapse:",
            table,
        )

    @_section
    def wallclock(self, repeats: int = 5) -> None:
        """Single-call times of every selector (indicative), and EMMS against LogME
        (F-label) from ``repeats`` timed calls per (model, target)."""
        timed = [m for m in TIMED if m in set(self.scores.method)]
        self.timings = pd.concat(
            [experiment.time_calls(self.inputs[d], timed, repeats=repeats) for d in self.targets],
            ignore_index=True,
        )
        self.save_table(self.timings, "timings_repeated")
        if len(timed) == 2:
            self.speed = experiment.speedup(self.timings, *reversed(timed), seed=0)
            self.save_table(pd.DataFrame([self.speed]), "speedup")
        medians = (
            self.timings.groupby(["method", "dataset", "model"])["seconds"].median().reset_index()
        )
        per_method = medians.groupby("method")["seconds"].agg(["sum", "median", "min", "max"])
        labels = self.scores.drop_duplicates("method").set_index("method")["label"]
        per_method.index = [labels[m] for m in per_method.index]
        per_method.columns = [
            "sum of per-call medians (s)",
            "median call (s)",
            "fastest call (s)",
            "slowest call (s)",
        ]
        single = self.scores.groupby("label")["seconds"].agg(["sum", "median"])
        single.columns = ["one call each: sum (s)", "one call each: median (s)"]
        machine = experiment.machine_table()
        self.save_table(machine, "machine")
        fig = plotting.plot_wallclock(self.scores)
        show(
            machine,
            per_method.reset_index().rename(columns={"index": "selector"}),
            _speed_text(self.speed, repeats) if self.speed else "",
            self.save_figure(fig, "wallclock"),
            (single.sort_values("one call each: sum (s)").reset_index(), "{:.4f}"),
        )
        self.save_table(single.reset_index(), "wallclock")

    @_section
    def stage_timings(self) -> None:
        """Wall-clock of every pipeline stage of this task (reports/timings/TASK.json)."""
        path = self.paths.timings
        if not path.is_file():
            show(f"No stage timings yet ({path.name} is written by the pipeline's stages).")
            return
        table = stage_timings_table(json.loads(path.read_text()))
        show(table)

    @_section
    def headline(self) -> None:
        reference = pd.read_csv(self.root / REFERENCE / "headline.csv").set_index("task")
        self.reference = reference.loc[self.task.headline_task]
        head = experiment.headline(
            self.evaluation,
            self.scores,
            self.reference,
            speed=self.speed,
            paper_label=self.task.paper_scale,
        )
        self.head = head
        self.save_table(head, "headline")
        show(head)

    @_section
    def paper_scale(self) -> None:
        """The paper's published fine-tuning tables, their spread beside ours."""
        spreads, shown = [], []
        for name, (what, scale, short) in PAPER_TABLES.items():
            path = self.root / REFERENCE / name
            if not path.is_file():
                continue
            table = pd.read_csv(path)
            spread = experiment.paper_scale_spread(table)
            for column in ("range", "std", "gap best - 2nd"):
                spread[column] *= scale
            spread.insert(0, "zoo", f"paper scale (published numbers): {short}")
            spreads.append(spread)
            numeric = table.columns[1:]
            table[numeric] = table[numeric] * scale
            shown += [
                f"**paper scale (published numbers): {what}** — `data/reference/{name}`",
                (table, "{:.2f}"),
            ]
        ours = self.summary.pivot(index="dataset", columns="model", values="mean")
        scale = 100.0 if float(np.nanmax(ours.to_numpy())) <= 1.0 else 1.0
        own = experiment.paper_scale_spread(ours.reset_index())
        for column in ("range", "std", "gap best - 2nd"):
            own[column] *= scale
        own.insert(0, "zoo", "embedded scale (this run): digits zoo")
        spreads.append(own)
        table = pd.concat(spreads, ignore_index=True)
        self.save_table(table, "paper_scale_spread")
        short = table.assign(
            where=[
                f"{z.split(': ')[-1]} · {d}"
                for z, d in zip(table.zoo, table.dataset, strict=True)
            ],
            zoo=[
                "paper scale (published numbers)" if z.startswith("paper") else z for z in table.zoo
            ],
        )
        figure = self.save_figure(plotting.plot_paper_spread(short), "paper_scale_spread")
        show(
            *shown,
            "The truth's spread, per dataset, in points (paper scale and this run):",
            (table, "{:.2f}"),
            figure,
        )

    @_section
    def discussion(self) -> None:
        head = self.head.set_index("quantity")
        paper_col, run_col = head.columns[0], head.columns[1]
        numbers = {
            "gain_run": float(head[run_col].iloc[0]),
            "gain_paper": float(head[paper_col].iloc[0]),
            "speedup_paper": float(head[paper_col].iloc[1]),
        }
        text = discussion_text.discussion(
            evaluation=self.evaluation,
            paired=self.paired_table,
            wins=self.wins,
            paired_evidence=self.paired_evidence,
            dims=self.dims,
            weights=self.weights,
            spread=self.spread,
            headline=numbers,
            speed=self.speed,
            scores=self.scores,
        )
        atomic_write_text(self.out / "tables" / "discussion.md", text)
        show(text)

    def warnings_table(self) -> None:
        """Every warning raised while computing this report, counted once per (where,
        what)."""
        if not self.caught:
            show("No warning was raised while computing this report.")
            return
        table = (
            pd.DataFrame(self.caught)
            .groupby(["warning", "message", "selector", "dataset"], sort=False)
            .agg(models=("model", lambda m: ", ".join(dict.fromkeys(m))), count=("model", "size"))
            .reset_index()
        )
        table = table[["warning", "selector", "dataset", "models", "count", "message"]]
        self.save_table(table, "warnings")
        show(table)

    def references(self) -> None:
        show(discussion_text.references())

    def write_metrics(self) -> dict:
        """``metrics.json``: every ranking metric per (dataset, method) with its 95 %
        bootstrap interval, each model's truth (mean, std, seeds), the truth's spread
        over its seed noise and its split-seed reliability, the conclusions (best
        selector per target, sign of EMMS's gain over LogME (F-label)) and the machine.
        CI compares it with the committed one: exactly after ``make repro`` (every key but
        ``machine``), within the envelope after ``make repro-scratch``
        (:mod:`emms.reports.envelope`)."""
        from emms.environment import machine_info

        evaluation = self.evaluation
        metrics: dict = {}
        intervals: dict = {}
        for row in evaluation.itertuples():
            metrics.setdefault(row.dataset, {}).setdefault(row.method, {})[row.metric] = round(
                float(row.value), 6
            )
            intervals.setdefault(row.dataset, {}).setdefault(row.method, {})[row.metric] = [
                round(float(row.low), 6),
                round(float(row.high), 6),
            ]
        metrics["intervals"] = intervals
        metrics["truth"] = {
            dataset: {
                row.model: {
                    "mean": round(float(row.mean), 6),
                    "std": round(float(row.std), 6),
                    "seeds": int(row.seeds),
                }
                for row in group.itertuples()
            }
            for dataset, group in self.summary.groupby("dataset")
        }
        metrics["_truth_range_over_seed_std"] = {
            d: round(float(v), 3) for d, v in self.spread["range_over_seed_std"].items()
        }
        reliability = experiment.split_seed_reliability(self.split_seed_taus)
        metrics["_truth_split_seed_reliability"] = {
            d: round(float(v), 6) for d, v in reliability.items()
        }
        tau = evaluation[evaluation.metric == "weighted_tau"]
        metrics["winners"] = {
            dataset: group.sort_values("value", ascending=False)["method"].iloc[0]
            for dataset, group in tau.groupby("dataset")
        }
        means = tau.groupby("method")["value"].mean()
        gain = means["emms"] - means["logme_flabel"]
        metrics["headline"] = {"sign of EMMS - LogME (F-label), mean tau": "+" if gain > 0 else "-"}
        metrics["paired"] = {
            f"{first} - {baseline}": _wins_json(wins)
            for first, table in (("emms", self.wins), ("emms_evidence", self.wins_evidence))
            for baseline, wins in table.items()
            if wins is not None
        }
        head = self.head.set_index("quantity").iloc[:, -1]
        gain = float(head.iloc[0])
        metrics["headline"]["gain in mean weighted tau over LogME (F-label), %"] = (
            round(gain, 6) if np.isfinite(gain) else None  # None: LogME (F-label) tau <= 0
        )
        metrics["wallclock"] = {  # provenance: not compared, read by the summary report
            "speed-up over LogME (F-label)": dict(self.speed or {}),
        }
        metrics["machine"] = machine_info()
        atomic_write_text(
            self.out / "metrics.json", json.dumps(metrics, indent=2, sort_keys=True) + "\n"
        )
        from emms.cli import _record_imports

        _record_imports(f"report@{self.task.name}")  # what the kernel imported (tests)
        return metrics


def _wins_json(wins) -> dict:
    """A :class:`~emms.evaluation.WinSummary` as plain numbers (metrics JSON)."""
    return {
        "wins": wins.wins,
        "clear_wins": wins.clear_wins,
        "clear_losses": wins.clear_losses,
        "targets": wins.n_targets,
        "mean": round(float(wins.mean), 6),
        "low": round(float(wins.low), 6),
        "high": round(float(wins.high), 6),
    }


def _wins_cell(wins) -> str:
    if wins is None:
        return "n/a (no interval)"
    return (
        f"wins {wins.wins} of {wins.n_targets} ({wins.clear_wins} clearly), "
        f"mean {wins.mean:+.3f} [{wins.low:+.3f}, {wins.high:+.3f}]"
    )


def _speed_text(speed: dict, repeats: int) -> str:
    return (
        f"EMMS (exact) against LogME (F-label): each of the {speed['calls']} calls (model × "
        f"target) timed {repeats} times, median per call; speed-up = ratio of the sums of the "
        f"medians = **{speed['speedup']:.1f}×** (95 % interval {speed['low']:.1f}–"
        f"{speed['high']:.1f}× from resampling the calls; median of the per-call ratios "
        f"{speed['median_call_ratio']:.1f}×). Times are from the machine described above, "
        "shared with other work, so they are indicative of ratios, not of absolute speed."
    )


def stage_timings_table(timings: dict) -> pd.DataFrame:
    """``reports/timings/TASK.json`` as a table: stage, seconds (and minutes), in the
    order the pipeline runs them."""
    from emms.cli import STAGES

    order = {stage: i for i, stage in enumerate(STAGES)}
    rows = [
        {"stage": stage, "seconds": float(seconds), "minutes": float(seconds) / 60}
        for stage, seconds in sorted(timings.items(), key=lambda kv: order.get(kv[0], len(order)))
        if isinstance(seconds, int | float)
    ]
    return pd.DataFrame(rows, columns=["stage", "seconds", "minutes"])
