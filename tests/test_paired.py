"""The paired statistics of `mnist-bench ab`, against planted effects of known size and
against none (A/A), on rounds drawn like this VM's: a drift shared by each pair, heavy tails."""

import math

import numpy as np
import pytest
from scipy.stats import wilcoxon

from mnist_models.reporting.paired import (
    hodges_lehmann,
    holm,
    judge_counts,
    judge_pairs,
    render,
    signed_rank_p,
    verdict_records,
)

CASES = ["train-a", "train-b", "train-c", "train-d", "infer-a", "infer-b"]


def _rounds(rng, pairs: int, noise: float, effect: float = 0.0):
    """(base, new) seconds: the machine's speed drifts by ~20% and is shared by both rounds
    of a pair; each round has its own heavy-tailed noise (t with 3 degrees of freedom)."""
    drift = np.exp(np.cumsum(rng.normal(0, 0.05, pairs)))
    base = 0.15 * drift * np.exp(noise * rng.standard_t(3, pairs))
    new = 0.15 * drift * np.exp(noise * rng.standard_t(3, pairs)) * (1 + effect)
    return base.tolist(), new.tolist()


def _comparison(rng, effect: float, pairs: int = 40, noise: float = 0.03):
    return judge_pairs({c: _rounds(rng, pairs, noise, effect if c.startswith("train") else 0.0) for c in CASES})


def test_signed_rank_p_is_scipys_exact_wilcoxon():
    rng = np.random.default_rng(1)
    for n in (6, 13, 40):
        d = rng.normal(0.01, 0.03, n)
        assert signed_rank_p(d) == pytest.approx(wilcoxon(d, alternative="greater", method="exact").pvalue)


@pytest.mark.parametrize("n,k", [(6, 1), (10, 9), (20, 53)])
def test_the_interval_is_the_walsh_averages_at_the_exact_critical_rank(n, k):
    """k: the largest with P(T+ <= k - 1) <= 0.025 (Wilcoxon's table: 0, 8, 52 as critical values)."""
    d = np.random.default_rng(n).normal(0, 1, n)
    i, j = np.triu_indices(n)
    walsh = np.sort((d[i] + d[j]) / 2)
    _, low, high = hodges_lehmann(d)
    assert (low, high) == (walsh[k - 1], walsh[len(walsh) - k])


def test_ties_and_long_runs_use_the_normal_approximation_as_scipy_does():
    tied = np.array([0.01, 0.01, 0.02, 0.02, -0.01, 0.03, 0.03, 0.04, -0.02, 0.05])
    assert signed_rank_p(tied) == pytest.approx(
        wilcoxon(tied, alternative="greater", method="approx", correction=True).pvalue, rel=0.02
    )
    long = np.random.default_rng(8).normal(0.003, 0.02, 200)
    assert signed_rank_p(long) == pytest.approx(
        wilcoxon(long, alternative="greater", method="approx", correction=True).pvalue, rel=0.02
    )


def test_hodges_lehmann_interval_covers_the_truth_about_95_percent():
    rng = np.random.default_rng(2)
    covered = [lo <= 0.02 <= hi for lo, hi in (hodges_lehmann(rng.normal(0.02, 0.05, 30))[1:] for _ in range(400))]
    assert 0.92 <= np.mean(covered) <= 0.98


def test_too_few_pairs_give_no_interval_and_say_how_many_more():
    estimate, low, high = hodges_lehmann(np.array([0.1, 0.2, 0.1, 0.3]))
    assert 0.1 < estimate < 0.3 and math.isinf(low) and math.isinf(high)
    table = judge_pairs({"train-a": ([1, 1, 1, 1], [2, 2, 2, 2.1])})
    assert table["verdict"][0] == "undecided" and table["note"][0] == "needs 2+ more rounds for an interval"


def test_holm_steps_down():
    assert holm(np.array([0.001, 0.02, 0.04]), 0.05).tolist() == [True, True, True]
    assert holm(np.array([0.001, 0.04, 0.03]), 0.05).tolist() == [True, False, False]


def test_a_planted_5_percent_is_flagged_in_every_affected_case_and_nothing_else():
    rng = np.random.default_rng(3)
    for _ in range(10):
        table = _comparison(rng, 0.05, noise=0.015)
        assert table.set_index("case")["verdict"].to_dict() == {
            **{c: "slower" for c in CASES[:4]},
            "infer-a": "unchanged",
            "infer-b": "unchanged",
        }
        assert (table["low"][:4] > 0.02).all() and (table["detectable"] < 0.05).all()


def test_aa_raises_at_most_the_family_wise_rate():
    rng = np.random.default_rng(4)
    failed = [(_comparison(rng, 0.0)["verdict"] == "slower").any() for _ in range(100)]
    assert sum(failed) <= 5  # ALPHA = 0.05 per comparison, shared across its six cases


def test_noisy_rounds_are_undecided_with_the_rounds_they_need_never_unchanged():
    rng = np.random.default_rng(5)
    table = _comparison(rng, 0.0, pairs=10, noise=0.10)
    assert (table["verdict"] == "undecided").all()
    assert table["note"].str.match(r"needs \d+\+? more rounds to see 5%").all()
    assert (table["detectable"] > 0.05).all()


def test_a_real_speedup_is_faster():
    rng = np.random.default_rng(6)
    table = judge_pairs({"train-a": _rounds(rng, 40, 0.02, -0.10)})
    assert table["verdict"][0] == "faster" and table["high"][0] < -0.02


def test_instruction_counts_have_their_own_tight_threshold():
    table = judge_counts({"train-a": (5_006_864, 5_107_000), "infer-a": (7_089_696, 7_088_228), "train-b": (100, 98)})
    assert table["verdict"].tolist() == ["slower", "unchanged", "faster"]
    assert table["change"][0] == pytest.approx(0.02, abs=1e-4)


def test_the_table_and_the_records_show_every_verdict():
    rng = np.random.default_rng(7)
    table = _comparison(rng, 0.10, noise=0.015)
    text = render(table, "markdown", title="t")
    assert text.startswith("## t") and "| slower" in text and text.rstrip().endswith("4 slower, 2 unchanged")
    records = verdict_records(judge_pairs({"x": ([1, 1], [1, 1])}))
    assert records[0]["low"] is None and records[0]["verdict"] == "undecided"
