"""A scripted stand-in for the *subprocess runner only* (nvidia-smi, nvidia-cuda-mps-control):
this machine has no GPU, so the text those tools print is replayed from real output samples.
Everything else in the GPU tests is the real code."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from modelplex.runtime.gpu_smi import CommandResult


@dataclass
class ScriptedTools:
    """Answers commands by their argv (joined with spaces); records every call."""

    answers: dict[str, CommandResult] = field(default_factory=dict)
    calls: list[tuple[str, str | None, dict[str, str]]] = field(default_factory=list)
    daemon_up: set[str] = field(default_factory=set)  # pipe dirs where a fake daemon answers
    servers: dict[str, list[int]] = field(default_factory=dict)  # pipe dir -> server pids
    mps_installed: bool = True

    def __call__(self, argv: Sequence[str], stdin: str | None, timeout_s: float, env: Mapping[str, str] | None) -> CommandResult:
        key = " ".join(argv)
        self.calls.append((key, stdin, dict(env or {})))
        if argv[0] == "nvidia-cuda-mps-control":
            return self._mps(list(argv), stdin, dict(env or {}))
        return self.answers.get(key, CommandResult(127, "", f"{argv[0]} is not installed (not on PATH)"))

    def _mps(self, argv: list[str], stdin: str | None, env: dict[str, str]) -> CommandResult:
        if not self.mps_installed:
            return CommandResult(127, "", "nvidia-cuda-mps-control is not installed (not on PATH)")
        pipe = env.get("CUDA_MPS_PIPE_DIRECTORY", "/tmp/nvidia-mps")
        if argv[1:] == ["-h"]:
            return CommandResult(0, "usage")
        if argv[1:] == ["-d"]:
            self.daemon_up.add(pipe)
            return CommandResult(0, "")
        if pipe not in self.daemon_up:
            return CommandResult(1, "", "Cannot find MPS control daemon process")
        if stdin == "quit\n":
            self.daemon_up.discard(pipe)
            return CommandResult(0, "")
        return CommandResult(0, "".join(f"{p}\n" for p in self.servers.get(pipe, [])))

    def mps_commands(self) -> list[str | None]:
        return [stdin for key, stdin, _ in self.calls if key.startswith("nvidia-cuda-mps-control")]
