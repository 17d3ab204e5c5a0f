"""Plots of a run: the learning curve (the paper's Figure 2) and the quality-diversity comparison."""

from __future__ import annotations

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


def plot_comparison(rows: list[dict[str, Any]], path: Path, title: str) -> None:
    """The quality-diversity plane (NLL-test against NLL-oracle): each method's trajectory and the MLE
    generator's temperatures, annotated."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 5))
    styles = {
        "MLE at temperature": "k.-", "REINFORCE, reward 1": "s--", "continued MLE": "^:", "SeqGAN": "o-"
    }
    for method, style in styles.items():
        pts = [r for r in rows if r["method"] == method]
        if pts:
            ax.plot([p["nll_test"] for p in pts], [p["nll_oracle"] for p in pts], style, ms=4, label=method)
    for p in rows:
        if p["method"] == "MLE at temperature":
            ax.annotate(f"{p['temperature']:g}", (p["nll_test"], p["nll_oracle"]), fontsize=7,
                        textcoords="offset points", xytext=(3, 3))
    ax.set_xlabel("NLL-test (diversity: lower is better)")
    ax.set_ylabel("NLL-oracle (quality: lower is better)")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_signal(rows: list[dict[str, Any]], path: Path, title: str) -> None:
    """The adversarial signal's diagnostics (train.diagnostics) against the adversarial round: the
    reward's accuracy and AUC on real against generated sequences, its rank correlations with the
    oracle, the share of Q_t's variance that is signal, and the policy gradient's two parts."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in rows if r["phase"] == "adversarial"]
    xs = [r["step"] for r in rows]
    fig, axes = plt.subplots(2, 2, figsize=(10, 7), squeeze=False)
    panels = (
        ("real vs generated (0.5: chance)", (("d_accuracy", "accuracy"), ("d_auc", "AUC")), 0.5, "linear"),
        ("Spearman with the oracle's log-likelihood", (("reward_oracle_spearman", "reward D(y)"),
                                                       ("q_oracle_spearman", "Q_t, mean over t < T")), 0.0,
         "linear"),
        ("share of Q_t's variance that is signal", (("q_signal_share", "t < T"),), None, "linear"),
        ("policy-gradient norm", (("pg_constant_norm", "constant-reward part"),
                                  ("pg_centred_norm", "centred part")), None, "log"),
    )  # fmt: skip
    for ax, (label, curves, level, scale) in zip(axes.flat, panels, strict=True):
        for key, name in curves:
            ax.plot(xs, [float(r.get(key, "nan")) for r in rows], "o-", ms=3, label=name)
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
