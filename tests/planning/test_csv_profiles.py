"""Profile tables imported from CSV: a plan from measurements made elsewhere; bad rows named."""

from __future__ import annotations

import pytest

from modelplex.core import Demand, DeviceKind
from modelplex.core.errors import InvalidArgumentError
from modelplex.planning import check_plan, plan
from modelplex.planning.csv_profiles import parse_profiles_csv
from modelplex.planning.specs import parse_devices

GOOD = """model,slice_size,batch,processes,throughput_rps,latency_ms,memory_mb
resnet50,1g.10gb,8,1,,10.0,2000
resnet50,1g,16,1,,18.0,
resnet50,3g.40gb,16,1,,8.0,
resnet50,3,16,2,2600,,
resnet50,7g.80gb,32,1,,8.0,
resnet50,7,32,2,5500,,
"""


def test_rows_become_profiles_keyed_by_slice_batch_processes() -> None:
    (prof,) = parse_profiles_csv(GOOD)
    assert prof.model == "resnet50" and prof.device_kind == "gpu-mig" and prof.memory_mb == 2000
    assert prof.process_counts() == [1, 2]
    two = [p for p in prof.points if p.processes == 2 and p.slice_size == 3]
    assert two[0].p50_ms == pytest.approx(1000 * 2 * 16 / 2600)  # latency derived from throughput
    assert prof.latency_ms(1, 8) == 10.0 and prof.latency_ms(3, 16, processes=2) == pytest.approx(12.3077, rel=1e-4)


def test_a_plan_from_imported_profiles_is_valid() -> None:
    profs = parse_profiles_csv(GOOD)
    dem = [Demand("resnet50", 6000, 100)]
    p = plan(dem, profs, parse_devices("mig:8@a100-80gb"), "min-devices")
    assert not p.unserved and check_plan(p, dem, profs) == []


@pytest.mark.parametrize(
    "text, needle",
    [
        ("", "empty file"),
        ("model,batch,latency_ms\n", "missing column(s) slice_size"),
        ("model,slice_size,batch\n", "latency_ms or throughput_rps"),
        ("model,slice_size,batch,latency_ms,colour\n", "unknown column(s) colour"),
        ("model,slice_size,batch,latency_ms\n", "no rows after the header"),
        ("model,slice_size,batch,latency_ms\na,1,1,2\na,1,x,2\n", "line 3: batch must be an integer >= 1, got 'x'"),
        ("model,slice_size,batch,latency_ms\na,1,0,2\n", "line 2: batch must be"),
        ("model,slice_size,batch,latency_ms\na,1,1,-3\n", "line 2: latency_ms must be a number > 0"),
        ("model,slice_size,batch,latency_ms\na,1,1,nan\n", "line 2: latency_ms must be"),
        ("model,slice_size,batch,latency_ms\na,1,1,\n", "line 2: needs latency_ms or throughput_rps"),
        ("model,slice_size,batch,latency_ms\n,1,1,2\n", "line 2: empty model"),
        ("model,slice_size,batch,latency_ms,device_kind\na,1,1,2,tpu\n", "line 2: device_kind 'tpu'"),
        ("model,slice_size,batch,latency_ms\na,big,1,2\n", "line 2: slice_size must be an integer"),
    ],
)
def test_bad_input_names_the_line(text: str, needle: str) -> None:
    with pytest.raises(InvalidArgumentError) as err:
        parse_profiles_csv(text)
    assert needle in str(err.value)


def test_kind_column_and_default_kind() -> None:
    text = "model,slice_size,batch,latency_ms,device_kind\na,50,4,3,gpu-mps\nb,2,4,3,\n"
    profs = {p.model: p for p in parse_profiles_csv(text, default_kind=DeviceKind.CPU)}
    assert profs["a"].device_kind == "gpu-mps" and profs["b"].device_kind == "cpu"
