"""The pytest plugin as a user meets it: installed through its entry point, a scenario test
is a few lines with the `datacenter` fixture, configured by a marker."""

import pytest

USER_TESTS = """
import pytest

@pytest.mark.asyncio
@pytest.mark.datacenter({"hgx-h100": 1}, seed=7)
async def test_a_gpu_off_the_bus_drains_its_node(datacenter):
    await datacenter.inject("r001-n01", "xid", code=79, gpu=3)
    await datacenter.wait_for(lambda s: s.find_events(message="node r001-n01 drained"))
    assert datacenter.state.find_events("xid", subject="gpu/r001-n01/3", severity="critical")

@pytest.mark.asyncio
async def test_a_node_that_never_drains(datacenter):
    assert datacenter.state.summary.gpus == 64
    await datacenter.wait_for(lambda s: s.summary.gpus_lost > 0, timeout=3)
"""


@pytest.mark.broker
def test_a_user_test_of_five_lines_runs_a_data_center(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_user=USER_TESTS)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*WaitTimeout: condition `*s.summary.gpus_lost > 0*` was not met within 3 s*",
            "FAILED test_user.py::test_a_node_that_never_drains*",
        ]
    )


def test_the_marker_is_declared_for_strict_markers(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest_subprocess("--strict-markers", "--markers")
    result.stdout.fnmatch_lines(["@pytest.mark.datacenter(topology=None, **options):*"])
    assert result.ret == 0
