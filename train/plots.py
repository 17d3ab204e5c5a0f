"""Plots of a run: the learning curve (the paper's Figure 2) and the quality-diversity comparison."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from train.evaluation import BLEU_ORDERS


def plot_learning_curve(rows: list[dict[str, Any]], path: Path, title: str) -> None:
    """NLL-oracle and NLL-test against training progress, MLE and adversarial phases marked (as the
    paper's Figure 2): x is MLE epochs, then adversarial rounds (one generator update each). Text runs
    plot NLL-test, and BLEU-n / Self-BLEU-n in a second panel."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    real = next((r for r in rows if r["phase"] == "real"), None)  # a text run's yardstick
    rows = [r for r in rows if r["phase"] != "real"]
    text = bool(rows) and "bleu2" in rows[0]
    fig, axes = plt.subplots(1, 2 if text else 1, figsize=(11 if text else 7, 4.2), squeeze=False)
    mle_end = max((r["step"] for r in rows if r["phase"] == "mle"), default=0)
    xs = [r["step"] + (mle_end if r["phase"] != "mle" else 0) for r in rows]
    ax = axes[0][0]
    curves = (("nll_test", "NLL-test", "s--"),) if text else (
        ("nll_oracle", "NLL-oracle", "o-"), ("nll_test", "NLL-test", "s--"))
    for key, label, style in curves:
        ax.plot(xs, [r[key] for r in rows], style, ms=3, label=label)
    ax.set_ylabel("mean per-token NLL (nats)")
    if text:
        bleu_ax = axes[0][1]
        for n in BLEU_ORDERS:
            (line,) = bleu_ax.plot(xs, [r[f"bleu{n}"] for r in rows], "o-", ms=3, label=f"BLEU-{n}")
            bleu_ax.plot(xs, [r[f"self_bleu{n}"] for r in rows], ":", color=line.get_color(),
                         label=f"Self-BLEU-{n}")  # fmt: skip
        if real is not None:
            bleu_ax.axhline(real["bleu4"], color="black", lw=1, alpha=0.5, label="BLEU-4 of real lines")
            bleu_ax.axhline(real["self_bleu4"], color="black", lw=1, ls=":", alpha=0.5,
                            label="Self-BLEU-4 of real lines")  # fmt: skip
        bleu_ax.set_ylim(0, 1.1)  # BLEU lies in [0, 1]; the phase labels sit above it
        bleu_ax.set_ylabel("BLEU (solid), Self-BLEU (dotted)")
        bleu_ax.legend(fontsize=7, ncol=2)
    for ax in axes[0]:
        ax.axvline(mle_end, color="grey", lw=1)
        ax.text(mle_end, ax.get_ylim()[1], " adversarial  ", ha="left", va="top", fontsize=8, color="grey")
        ax.text(
            mle_end, ax.get_ylim()[1], "MLE pre-training ", ha="right", va="top", fontsize=8, color="grey"
        )
        ax.set_xlabel("MLE epochs, then adversarial rounds")
        ax.grid(alpha=0.3)
    axes[0][0].legend()
    if text:
        fig.suptitle(title, fontsize=10)
    else:
        axes[0][0].set_title(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_quality_diversity(
    rows: list[dict[str, Any]], path: Path, title: str, curve: str = "MLE at temperature"
) -> None:
    """The quality-diversity plane for any number of methods: the temperature curve (rows of method
    `curve`, annotated), then each method's trajectory in its own colour and marker, its end point
    larger and with error bars of one standard error on both axes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 5.5))
    pts = sorted((r for r in rows if r["method"] == curve), key=lambda r: r["temperature"])
    if pts:
        ax.plot([p["nll_test"] for p in pts], [p["nll_oracle"] for p in pts], "k.-", label=curve)
    for p in pts:
        ax.annotate(f"{p['temperature']:g}", (p["nll_test"], p["nll_oracle"]), fontsize=7,
                    textcoords="offset points", xytext=(3, 3))  # fmt: skip
    methods = list(dict.fromkeys(r["method"] for r in rows if r["method"] != curve))
    markers = "os^vDP*Xh<>"
    for k, method in enumerate(methods):
        run = [r for r in rows if r["method"] == method]
        color, marker = f"C{k % 10}", markers[k % len(markers)]
        ax.plot([r["nll_test"] for r in run], [r["nll_oracle"] for r in run], marker=marker, ls="-",
                color=color, ms=3, alpha=0.6, label=method)  # fmt: skip
        end = run[-1]
        ax.errorbar(end["nll_test"], end["nll_oracle"], xerr=end["nll_test_se"], yerr=end["nll_oracle_se"],
                    marker=marker, color=color, ms=8, capsize=2, mec="black")  # fmt: skip
    ax.set_xlabel("NLL-test (diversity: lower is better)")
    ax.set_ylabel("NLL-oracle (quality: lower is better)")
    ax.set_title(f"{title}; large markers: end points", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


SIGNAL_PANELS = (
    ("real vs generated (0.5: chance)", (("d_accuracy", "accuracy"), ("d_auc", "AUC")), 0.5, "linear"),
    ("Spearman with the oracle's log-likelihood",
     (("reward_oracle_spearman", "reward D(y)"), ("q_oracle_spearman", "Q_t, mean over t < T")), 0.0,
     "linear"),
    ("share of Q_t's variance that is signal", (("q_signal_share", "t < T"),), None, "linear"),
    ("policy-gradient norm", (("pg_constant_norm", "constant-reward part"),
                              ("pg_centred_norm", "centred part")), None, "log"),
)  # fmt: skip


def _value(row: dict[str, Any], key: str) -> float:
    value = row.get(key)
    return math.nan if value is None or value == "" else float(value)


def signal_panels(rows: list[dict[str, Any]]) -> list[tuple[str, list[tuple[str, list[float]]], Any, str]]:
    """The diagnostics' panels that have data in the adversarial rows: (title, [(curve, values)], the
    reference level, the y scale), each curve with at least one finite value (a text run, with no
    oracle, has only the first panel; `--reward-mode terminal` no Q_t panels)."""
    panels = []
    for title, curves, level, scale in SIGNAL_PANELS:
        found = [(name, [_value(r, key) for r in rows]) for key, name in curves]
        found = [(name, values) for name, values in found if any(math.isfinite(v) for v in values)]
        if found:
            panels.append((title, found, level, scale))
    return panels


def plot_signal(rows: list[dict[str, Any]], path: Path, title: str) -> None:
    """The adversarial signal's diagnostics (train.diagnostics) against the adversarial round: the
    reward's accuracy and AUC on real against generated sequences, its rank correlations with the
    oracle, the share of Q_t's variance that is signal, and the policy gradient's two parts; only the
    panels that have data (`signal_panels`)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in rows if r["phase"] == "adversarial"]
    xs = [r["step"] for r in rows]
    panels = signal_panels(rows)
    if not panels:
        return
    shape = (1, len(panels)) if len(panels) < 3 else (2, 2)
    fig, axes = plt.subplots(*shape, figsize=(5 * shape[1], 3.5 * shape[0] + 0.5), squeeze=False)
    for ax in list(axes.flat)[len(panels):]:
        ax.set_visible(False)
    for ax, (label, curves, level, scale) in zip(axes.flat, panels, strict=False):
        for name, values in curves:
            ax.plot(xs, values, "o-", ms=3, label=name)
        if level is not None:
            ax.axhline(level, color="grey", lw=1, ls=":")
        ax.set_yscale(scale)
        ax.set_ylabel(label, fontsize=9)
        ax.set_xlabel("adversarial round")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
