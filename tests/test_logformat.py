"""`--log-format json`: one JSON object per line from the CLI process and from its workers."""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path

import pytest
from server import start_server

from modelplex.cli import build_parser, configure_logging
from modelplex.logformat import JsonLinesFormatter, parse_log_format

KEYS = {"time", "level", "logger", "message", "pid"}


def test_a_record_is_one_json_line_with_time_level_logger_message() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        record = logging.LogRecord("modelplex.x", logging.WARNING, __file__, 1, "two\nlines %d", (7,), sys.exc_info())
    line = JsonLinesFormatter().format(record)
    assert "\n" not in line
    event = json.loads(line)
    assert KEYS <= event.keys()
    assert (event["level"], event["logger"], event["message"]) == ("warning", "modelplex.x", "two\nlines 7")
    assert event["time"].endswith("Z") and "ValueError: boom" in event["exception"]


def test_cli_flag_before_or_after_the_subcommand_and_env_for_workers(capsys: pytest.CaptureFixture[str],
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MODELPLEX_LOG_FORMAT", raising=False)
    assert build_parser().parse_args(["status", "--log-format", "json"]).log_format == "json"
    assert build_parser().parse_args(["--log-format", "json", "status"]).log_format == "json"
    assert build_parser().parse_args(["status"]).log_format == "text"
    configure_logging("info", fmt="json")
    try:
        logging.getLogger("modelplex.test").info("hello %s", "there")
        event = json.loads(capsys.readouterr().err.strip().splitlines()[-1])
        assert (event["message"], event["level"]) == ("hello there", "info")
        assert os.environ["MODELPLEX_LOG_FORMAT"] == "json"
    finally:
        configure_logging("info")
    with pytest.raises(ValueError):
        configure_logging("info", fmt="xml")
    assert parse_log_format(" JSON ") == "json" and parse_log_format(None) == "text" and parse_log_format("x") is None


@pytest.mark.slow
def test_a_server_and_its_workers_write_only_json_lines(test_repository: Path, tmp_path: Path) -> None:
    srv = start_server(test_repository, tmp_path / "state", ["--log-format", "json", "--log-level", "debug"])
    try:
        status, _ = srv.request("/v2/models/cnn/ready")
        assert status == 200
    finally:
        srv.stop()
    lines = [line for line in srv.log().splitlines() if line.strip()]
    events = [json.loads(line) for line in lines]  # every line parses
    assert all(KEYS <= e.keys() for e in events)
    assert {e["pid"] for e in events} - {srv.proc.pid}, "no line from a worker process"
