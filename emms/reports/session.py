"""One report, section by section: what the experiment notebooks call.

A notebook is a sequence of markdown cells (the paper's reasoning) and one-line calls to a
:class:`ReportSession` (the numbers). Each section computes from the cached outputs of the
DVC stages, saves its tables (CSV + markdown) and figures (PNG + SVG) into the staging
folder that :func:`emms.reports.notebook.run_notebook` moves into ``reports/`` once every
cell has run, and returns what the notebook displays.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from emms.cache import atomic_write_text, read_sidecar
from emms.params import load_params
from emms.paths import TaskPaths
from emms.tasks import get_task

from . import experiment, plotting

__all__ = ["ReportSession"]

REFERENCE = Path("data/reference")


class ReportSession:
    """The report of one task, written to ``output_dir`` (``figures/``, ``tables/``,
    ``metrics.json``)."""

    def __init__(self, task: str, output_dir: str | Path, root: str | Path = "."):
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

    # --- saving ---------------------------------------------------------------------------
    def save_table(self, frame: pd.DataFrame, name: str, index: bool = False) -> pd.DataFrame:
        folder = self.out / "tables"
        atomic_write_text(folder / f"{name}.csv", frame.to_csv(index=index))
        markdown = frame.to_markdown(index=index, floatfmt=".3f") + "\n"
        atomic_write_text(folder / f"{name}.md", markdown)
        return frame

    def save_figure(self, fig, name: str):
        plotting.save_figure(fig, self.out / "figures", name)
        return fig

    # --- sections -------------------------------------------------------------------------
    def truth(self) -> pd.DataFrame:
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
        self.save_figure(plotting.plot_truth(self.summary), "truth")
        return self.spread

    def load_inputs(self) -> dict:
        self.inputs = {
            dataset: experiment.load_target_inputs(
                self.task, self.block, dataset, self.encoders, root=self.root
            )
            for dataset in self.targets
        }
        return self.inputs

    def encoders_table(self) -> pd.DataFrame:
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
        return pd.DataFrame(rows)

    def datasets_table(self) -> pd.DataFrame:
        return pd.DataFrame(
            [
                {
                    "dataset": d,
                    "N (train)": len(x.features[self.models[0]]),
                    "classes": len(x.class_names or []),
                    "class names": ", ".join(x.class_names or []),
                }
                for d, x in self.inputs.items()
            ]
        )

    def sample_size(self) -> pd.DataFrame:
        dims = pd.DataFrame(
            [
                {"dataset": d, "model": m, "N": len(f), "D": f.shape[1]}
                for d, x in self.inputs.items()
                for m, f in x.features.items()
            ]
        )
        dims["D >= N - 1"] = dims["D"] >= dims["N"] - 1
        self.save_table(dims, "sample_size")
        return dims.pivot(index="model", columns="dataset", values="D >= N - 1")

    def score(self) -> pd.DataFrame:
        results = [experiment.score_zoo(self.inputs[d], progress=False) for d in self.targets]
        self.scores = pd.concat([r[0] for r in results], ignore_index=True)
        self.weights = pd.concat([r[1] for r in results], ignore_index=True)
        self.save_table(self.scores, "scores")
        self.save_table(self.weights, "emms_weights")
        return self.scores.pivot_table(
            index=["dataset", "model"], columns="label", values="score"
        ).round(3)

    def evaluate(self) -> pd.DataFrame:
        self.evaluation = experiment.evaluate_methods(
            self.scores,
            self.summary,
            n_boot=self.evaluation_params.n_boot,
            seed=self.evaluation_params.seed,
        )
        self.save_table(self.evaluation, "evaluation")
        tau = self.evaluation[self.evaluation.metric == "weighted_tau"].copy()
        tau["tau_w"] = tau.apply(lambda r: f"{r.value:+.3f} ± {r['std']:.3f}", axis=1)
        table = tau.pivot(index="label", columns="dataset", values="tau_w")
        table["mean"] = tau.groupby("label")["value"].mean().map("{:+.3f}".format)
        table = table.sort_values("mean", ascending=False)
        self.save_table(table.reset_index(), "weighted_tau")
        self.save_figure(plotting.plot_tau(self.evaluation), "weighted_tau")
        return table

    def other_metrics(self) -> pd.DataFrame:
        other = self.evaluation[
            self.evaluation.metric.isin(["kendall_tau", "pearson", "rel@1"])
        ]
        table = other.pivot_table(
            index="label", columns=["metric", "dataset"], values="value"
        ).round(3)
        self.save_table(table.reset_index(), "other_metrics")
        return table

    def scores_vs_truth(self, methods=("emms", "logme_flabel")):
        fig = plotting.plot_scores_vs_truth(self.scores, self.summary, list(methods))
        return self.save_figure(fig, "scores_vs_truth")

    def emms_weights(self) -> pd.DataFrame:
        self.save_figure(plotting.plot_weights(self.weights), "emms_weights")
        mean_weights = self.weights.groupby(["dataset", "encoder"])["weight"].mean().unstack()
        self.save_table(mean_weights.reset_index(), "emms_mean_weights")
        return mean_weights.round(3)

    def wallclock(self) -> pd.DataFrame:
        self.save_figure(plotting.plot_wallclock(self.scores), "wallclock")
        wall = self.scores.groupby("label")["seconds"].agg(["sum", "median"]).sort_values("sum")
        self.save_table(wall.reset_index(), "wallclock")
        return wall.round(4)

    def headline(self) -> pd.DataFrame:
        reference = pd.read_csv(self.root / REFERENCE / "headline.csv").set_index("task")
        head = experiment.headline(
            self.evaluation, self.scores, reference.loc[self.task.headline_task]
        )
        self.save_table(head, "headline")
        return head.round(3)

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
        reliability = experiment.split_seed_reliability(self.truth_table, self.task.truth_metric)
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
        metrics["machine"] = machine_info()
        atomic_write_text(
            self.out / "metrics.json", json.dumps(metrics, indent=2, sort_keys=True) + "\n"
        )
        from emms.cli import _record_imports

        _record_imports(f"report@{self.task.name}")  # what the kernel imported (tests)
        return metrics
