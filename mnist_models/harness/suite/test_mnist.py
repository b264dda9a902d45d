"""pytest-benchmark cases: one test over every case of every operation the plans hold
(cases.PLANS): model x device x batch size x precision, for train, infer, tta and ddp.

    mnist-bench run LABEL                                   # the default matrix -> results/LABEL.json
    pytest --pyargs mnist_models.harness.suite --quick --benchmark-json /tmp/quick.json
    pytest bench --quick --benchmark-json /tmp/quick.json  # the same cases, from a checkout

Speed is recorded, never asserted; a case fails only when its work went wrong (a time to
accuracy whose seed missed the target).
"""

import pytest

from ..cases import PLANS, skip_reason
from ..operations import make_timer


def test_case(benchmark, mnist_case, bench_options, bench_data):
    """One case: an uncounted cold round, then the timed rounds, then what it recorded."""
    case = mnist_case
    reason = skip_reason(case, bench_options)
    if reason:
        pytest.skip(reason)
    data = bench_data(case.device) if PLANS[case.operation].resident else None  # ddp's ranks load their own
    timer = make_timer(case, bench_options, data)
    try:
        cold = timer.cold_round()
        benchmark.group = case.group
        benchmark.pedantic(timer.target, setup=timer.setup, rounds=bench_options.rounds, iterations=1)
        median = benchmark.stats.stats.median if benchmark.stats else None
        benchmark.extra_info.update(timer.extra_info(median, cold))
    finally:
        timer.close()
    failed = timer.failure(benchmark.extra_info)
    assert failed is None, f"{case.id}: {failed}"
