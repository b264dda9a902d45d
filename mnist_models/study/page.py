"""study.md: the notebook's questions Q1-Q7 in order, with the figures and one run's numbers.

render(numbers)    # numbers: what questions.run measured
"""

from __future__ import annotations

import pandas as pd


def _summary_md(rows: pd.DataFrame) -> str:
    return rows.to_markdown(index=False, intfmt=",")


def _epochs(n: int) -> str:
    return f"{n} epoch{'s' * (n != 1)}"


def render(n: dict) -> str:
    """study.md: Q1-Q7 in order, with the figures and this run's numbers."""
    cfg, h = n["cfg"], n["histories"]
    final = {m: hist[-1] for m, hist in h.items()}
    acc = n["per_class"].apply(lambda column: column.map("{:.2%}".format))  # DataFrame.map: pandas 2.1
    acc = acc.reset_index(names="model")
    q7 = n["q7"].to_markdown(index=False, floatfmt=".2f")
    if not (n["q7"]["device"] != "cpu").any():
        q7 += "\n\nNo accelerator was present in this run, so there is no GPU time from it."
        accel = n["bench_accel"]
        if accel is not None and len(accel):
            q7 += (
                " From benchmark result files (one training epoch, 60,000 images, median of "
                "the timed rounds):\n\n" + accel.to_markdown(index=False, floatfmt=".3g")
            )
        else:
            q7 += " Pass `--bench results/*.json` to quote accelerator figures from benchmark runs."
    wrong = ", ".join(f"{m} {c:,} of 10,000" for m, c in n["wrong_counts"].items())
    return f"""# The MNIST notebook's questions, answered

Made by `{n["command"]}`: both models trained with the same recipe (Adam, lr {cfg.lr},
batch {cfg.batch_size}, {_epochs(cfg.epochs)}, seed {cfg.seed}, fp32, on the CPU).

## Q1: a 2-layer network (MLP)

{_summary_md(n["summaries"]["mlp"])}

## Q2: a CNN with 2 conv and 2 linear layers

{_summary_md(n["summaries"]["cnn"])}

## Q3: training both for {_epochs(cfg.epochs)}

![curves](curves.png)

Final epoch: MLP train loss {final["mlp"]["train_loss"]:.4f}, CNN {final["cnn"]["train_loss"]:.4f}.
Per-epoch numbers: [history.csv](history.csv).

## Q4: test accuracy

{acc.to_markdown(index=False)}

The CNN gets {final["cnn"]["test_accuracy"]:.2%} of the test set right, the MLP {final["mlp"]["test_accuracy"]:.2%}.

![confusion mlp](confusion_mlp.png) ![confusion cnn](confusion_cnn.png)

## Q5: misclassified test samples

Wrong: {wrong}. The most confident mistakes first:

![misclassified mlp](misclassified_mlp.png)

![misclassified cnn](misclassified_cnn.png)

## Q6: intermediate layers

Every named layer's output shape for one image, captured with forward hooks:

{n["shapes"].to_markdown(index=False)}

![activations cnn](activations_cnn.png)

![activations mlp](activations_mlp.png)

## Q7: training time, CPU and GPU

Time per training epoch in this run (synchronized clocks; evaluation not included):

{q7}
"""
