"""pytest-benchmark cases: model x device x batch size x precision, for train, infer, tta and ddp.

    mnist-bench run LABEL                                   # the default matrix -> results/LABEL.json
    pytest --pyargs mnist_models.harness.suite --quick --benchmark-json /tmp/quick.json
    pytest bench --quick --benchmark-json /tmp/quick.json  # the same cases, from a checkout

Speed is recorded, never asserted; a case fails only when training went wrong.
"""

import pytest

from ..cases import BenchOptions, Case, skip_reason
from ..run import Run
from ..runs import make_run


def _measure(benchmark, case: Case, opts: BenchOptions, data) -> Run:
    reason = skip_reason(case, opts)
    if reason:
        pytest.skip(reason)
    run = make_run(case, opts, data(case.device) if case.operation != "ddp" else None)
    try:
        cold = run.cold_round()
        benchmark.group = case.group
        benchmark.pedantic(run.target, setup=run.setup, rounds=opts.rounds, iterations=1)
        median = benchmark.stats.stats.median if benchmark.stats else None
        benchmark.extra_info.update(run.extra_info(median, cold))
    finally:
        run.close()
    return run


def test_train(benchmark, train_case, bench_options, bench_data):
    """One training epoch from a fresh model and optimizer."""
    _measure(benchmark, train_case, bench_options, bench_data)


def test_infer(benchmark, infer_case, bench_options, bench_data):
    """A forward pass over the test set under inference_mode."""
    _measure(benchmark, infer_case, bench_options, bench_data)


def test_tta(benchmark, tta_case, bench_options, bench_data):
    """Time to accuracy (DAWNBench): fresh model to the first evaluation at the target."""
    _measure(benchmark, tta_case, bench_options, bench_data)
    info = benchmark.extra_info
    assert all(info["reached"]), (
        f"{tta_case.id}: seeds reached {info['target_accuracy']:.1%} {info['reached']}, "
        f"accuracy at stop {info['accuracy_at_stop']}"
    )


def test_ddp(benchmark, ddp_case, bench_options, bench_data):
    """One data-parallel training epoch of all the images, the slowest rank's time."""
    _measure(benchmark, ddp_case, bench_options, bench_data)
