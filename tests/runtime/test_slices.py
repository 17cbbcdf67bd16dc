"""Cutting the host's cores into slices."""

from __future__ import annotations

import pytest

from modelplex.core.errors import InvalidArgumentError
from modelplex.runtime.slices import divide, parse_cpus


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
