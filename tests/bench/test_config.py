"""The bench config: every bad input names its field; good ones parse to the rates asked for."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from modelplex.bench.config import load_config, parse_config
from modelplex.core.errors import InvalidArgumentError

GOOD: dict[str, Any] = {"url": "http://127.0.0.1:8000", "rates": [10, 20], "models": [{"name": "a"}, {"name": "b"}]}


def with_(**changes: Any) -> dict[str, Any]:
    doc = {**GOOD, **changes}
    return {k: v for k, v in doc.items() if v is not None}


def model(**entry: Any) -> dict[str, Any]:
    return with_(models=[{"name": "a", **entry}])


BAD = [  # (document, field the message starts with, words in the problem)
    (with_(colour="red"), "colour", "unknown key"),
    (model(slo=5), "models[0].slo", "unknown key"),
    (with_(rates=[10, -5]), "rates[1]", "> 0"),
    (with_(rates=None, rate=-1), "rate", "> 0"),
    (with_(rates=[]), "rates", "non-empty"),
    (with_(rates=None, models=[{"name": "a", "rate": 5}, {"name": "b"}]), "models[1].rates", "missing"),
    (with_(rates=None, models=[{"name": "a", "rates": [1, 2]}, {"name": "b", "rate": 1}]), "models[1].rates", "rungs"),
    (with_(models=[{"name": "a", "rate": 3}]), "models[0].rates", "total"),
    (model(slo_ms=-5), "models[0].slo_ms", "> 0"),
    (model(slo_ms="fast"), "models[0].slo_ms", "number"),
    (model(min_accuracy=0.9), "models[0].min_accuracy", "task"),
    (with_(models=[{"task": "t", "min_accuracy": 1.5}]), "models[0].min_accuracy", "<= 1"),
    (with_(models=[{"name": "a", "task": "t"}]), "models[0].name", "exactly one"),
    (with_(models=[{"name": ""}]), "models[0].name", "non-empty"),
    (with_(models=[{"name": "a"}, {"name": "a"}]), "models[1]", "twice"),
    (with_(models=[]), "models", "non-empty"),
    (with_(models=None), "models", "non-empty"),
    (with_(models=["a"]), "models[0]", "mapping"),
    (with_(url=None), "url", "exactly one target"),
    (with_(url="127.0.0.1:8000"), "url", "http://"),
    (with_(repository="no-such-folder", url=None), "repository", "folder"),
    (with_(serve_args=["--cpus", "0"]), "serve_args", "repository"),
    (with_(protocol="carrier-pigeon"), "protocol", "binary, json"),
    (with_(arrival="uniform"), "arrival", "poisson, gamma, trace"),
    (with_(cv=2.0), "cv", "gamma"),
    (with_(arrival="gamma", cv=0), "cv", "> 0"),
    (with_(arrival="trace"), "trace", "needs"),
    (with_(arrival="trace", trace="missing.txt"), "trace", "cannot read"),
    (with_(trace="t.txt"), "trace", "only with"),
    (with_(duration_s=0), "duration_s", "> 0"),
    (with_(seed=-1), "seed", ">= 0"),
    (with_(max_in_flight=0), "max_in_flight", ">= 1"),
    (with_(late_ms=-1), "late_ms", "> 0"),
    (model(weight=0), "models[0].weight", "> 0"),
    (with_(rates=None, models=[{"name": "a", "rate": 1, "weight": 2}]), "models[0].weight", "total"),
    (["a"], "config", "mapping"),
]


@pytest.mark.parametrize("doc,field,words", BAD, ids=[f"{i}-{b[1]}" for i, b in enumerate(BAD)])
def test_bad_config_names_the_field(doc: Any, field: str, words: str, tmp_path: Path) -> None:
    with pytest.raises(InvalidArgumentError) as err:
        parse_config(doc, tmp_path)
    assert err.value.message.startswith(f"{field}: "), err.value.message
    assert words in err.value.message
    assert "\n" not in err.value.message


@pytest.mark.parametrize("trace_text,words", [
    ("0.1\nabc\n", "line 2: 'abc' is not a time"),
    ("0.1\n-3\n", "line 2: expected"),
    ("0.1 a b\n", "line 1: expected"),
    ("# nothing\n\n", "no arrival times"),
    ("0.1 zed\n", "names 'zed'"),
    (b"\xff\xfe\x00", "cannot read"),
])
def test_bad_trace(trace_text: str | bytes, words: str, tmp_path: Path) -> None:
    f = tmp_path / "t.txt"
    f.write_bytes(trace_text if isinstance(trace_text, bytes) else trace_text.encode())
    with pytest.raises(InvalidArgumentError) as err:
        parse_config(with_(arrival="trace", trace="t.txt", rates=None), tmp_path)
    assert err.value.message.startswith("trace: ") and words in err.value.message, err.value.message


def test_total_rates_split_by_weight(tmp_path: Path) -> None:
    cfg = parse_config(with_(models=[{"name": "a", "weight": 3, "slo_ms": 20}, {"task": "t", "min_accuracy": 0.5}]),
                       tmp_path)
    assert [m.rates for m in cfg.models] == [(7.5, 15.0), (2.5, 5.0)]
    assert cfg.models[0].slo_ms == 20.0 and cfg.models[1].label == "task:t" and cfg.models[1].min_accuracy == 0.5
    assert cfg.rungs == 2 and cfg.duration_s == 10.0 and cfg.protocol == "binary" and cfg.late_s == 0.1


def test_per_model_rates_and_trace(tmp_path: Path) -> None:
    cfg = parse_config(with_(rates=None, models=[{"name": "a", "rate": 4}, {"name": "b", "rate": 6}]), tmp_path)
    assert [m.rates for m in cfg.models] == [(4.0,), (6.0,)]
    (tmp_path / "t.txt").write_text("# time model\n2.5 b\n1.5\n\n3.0 a  # last\n")
    cfg = parse_config(with_(arrival="trace", trace="t.txt", rates=None), tmp_path)
    assert cfg.trace is not None and cfg.trace.times_s == (0.0, 1.0, 1.5) and cfg.trace.models == (None, "b", "a")
    assert cfg.duration_s == 1.5 and cfg.models[0].rates == ()


def test_unreadable_or_not_yaml_file(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgumentError, match=r"^config: cannot read"):
        load_config(tmp_path / "none.yaml")
    (tmp_path / "bad.yaml").write_text("url: [unclosed\n")
    with pytest.raises(InvalidArgumentError, match=r"^config: .* is not YAML"):
        load_config(tmp_path / "bad.yaml")
