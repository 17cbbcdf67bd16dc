"""Cutting the host's cores into slices."""

from __future__ import annotations

import pytest

from modelplex.core.errors import InvalidArgumentError
from modelplex.runtime.slices import FRONTEND_CORES, divide, model_cpus, parse_cpus


@pytest.mark.parametrize(
    ("cpus", "count", "expected"),
    [
        ([0, 1], 1, [(0, 1)]),
        ([0, 1], 2, [(0,), (1,)]),
        ([0, 1, 2], 2, [(0, 1), (2,)]),
        ([0, 1], 3, [(0,), (1,), (0,)]),  # more instances than cores: one core each, shared
        ([0, 1], 0, []),
    ],
)
def test_divide(cpus: list[int], count: int, expected: list[tuple[int, ...]]) -> None:
    slices = divide(cpus, count)
    assert [s.cpus for s in slices] == expected
    assert all(s.size == len(s.cpus) for s in slices)


def test_parse_cpus_ranges_and_errors() -> None:
    available = parse_cpus(None)
    assert parse_cpus(f"{available[0]}") == [available[0]]
    with pytest.raises(InvalidArgumentError, match="does not have"):
        parse_cpus("0-4096")
    with pytest.raises(InvalidArgumentError, match="core list"):
        parse_cpus("zero")


def test_the_frontend_keeps_a_core_by_default_and_cpus_is_taken_as_given() -> None:
    every = parse_cpus(None)
    cores, frontend = model_cpus(None)
    if len(every) > FRONTEND_CORES:
        assert frontend == every[:FRONTEND_CORES] and cores == every[FRONTEND_CORES:]
    else:
        assert (cores, frontend) == (every, [])  # one core: shared
    assert not set(cores) & set(frontend)
    assert model_cpus(",".join(map(str, every))) == (every, [])  # --cpus: every listed core is cut
    assert model_cpus(str(every[0])) == ([every[0]], [])
    assert model_cpus(None, keep_frontend_core=False) == (every, [])  # a plan cuts every core
