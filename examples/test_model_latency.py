"""A model's latency gate in its own CI, with amlc's pytest plugin (installed with amlc).

    pytest examples/test_model_latency.py --amlc-endpoint local   # or AMLC_ENDPOINT=NAME
"""


def test_p99_and_errors_hold_under_two_users(amlc_bench):
    run = amlc_bench(users=2, requests=200)  # a bounded run of amlc_endpoint
    run.assert_slo("p99<=2s", "error_rate<=1%")  # a miss names each objective and the report


def test_p99_in_one_line(amlc_bench):
    assert amlc_bench(requests=100).p99_ms < 2000  # a failure shows the run and its report
