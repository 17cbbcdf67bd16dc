"""The NVIDIA MPS control daemon of one server: a private pipe directory, "running" only when the
daemon answers, stopped only by the server that started it, and a watch for MPS server faults.

After an MPS server fault every client of that server must exit before the server can come back;
`MpsWatch.check` says when that happened (a server pid seen before is gone, or the daemon stopped
answering) so the serving side can replace every worker on the GPUs the daemon serves.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import time
from pathlib import Path

from modelplex.core.errors import UnavailableError
from modelplex.runtime.gpu_smi import CommandResult, Runner, run_command

log = logging.getLogger(__name__)

CONTROL = "nvidia-cuda-mps-control"
ANSWER_TIMEOUT_S = 5.0  # a daemon that does not answer get_server_list in this long is not running
START_WAIT_S = 10.0  # how long a started daemon may take to answer


class MpsDaemon:
    """Where an MPS control daemon keeps its pipes and logs, and whether this server owns it."""

    def __init__(self, pipe_dir: Path, log_dir: Path, runner: Runner = run_command, visible: str = "",
                 made_dir: Path | None = None) -> None:
        self.pipe_dir = pipe_dir  # CUDA_MPS_PIPE_DIRECTORY
        self.log_dir = log_dir  # CUDA_MPS_LOG_DIRECTORY
        self.runner = runner  # runs nvidia-cuda-mps-control (replaced in tests: no GPU there)
        self.visible = visible  # CUDA_VISIBLE_DEVICES of the daemon (a MIG UUID for MPS inside an instance)
        self.owned = False  # this server started it (only then does it stop it)
        self._made_dir = made_dir  # the temporary directory `private` made (removed with the daemon)

    @classmethod
    def private(cls, runner: Runner = run_command, visible: str = "", parent: str | None = None) -> MpsDaemon:
        """A daemon in a fresh private directory under /tmp (one per server, mode 0700)."""
        root = Path(tempfile.mkdtemp(prefix="modelplex-mps-", dir=parent))
        return cls(root / "pipe", root / "log", runner, visible, made_dir=root)

    @property
    def env(self) -> dict[str, str]:
        return {"CUDA_MPS_PIPE_DIRECTORY": str(self.pipe_dir), "CUDA_MPS_LOG_DIRECTORY": str(self.log_dir)}

    def _control(self, command: str | None, timeout_s: float = ANSWER_TIMEOUT_S) -> CommandResult:
        env = dict(self.env)
        if self.visible:
            env["CUDA_VISIBLE_DEVICES"] = self.visible
        argv = [CONTROL] if command is not None else [CONTROL, "-d"]
        return self.runner(argv, f"{command}\n" if command is not None else None, timeout_s, env)

    def server_list(self) -> list[int] | None:
        """PIDs of the MPS servers the daemon runs (empty: none yet), or None when no daemon
        answers on this pipe directory."""
        res = self._control("get_server_list")
        if not res.ok:
            return None
        return parse_server_list(res.stdout)

    def running(self) -> bool:
        """A control daemon answers `get_server_list` on this pipe directory."""
        return self.server_list() is not None

    def ensure_running(self, wait_s: float = START_WAIT_S) -> bool:
        """Start the daemon unless one already answers here; True when this call started it
        (the server then owns it and stops it at exit)."""
        if self.running():
            log.info("an MPS control daemon already answers on %s (not ours: it is left running)", self.pipe_dir)
            return False
        self.pipe_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.log_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        res = self._control(None, timeout_s=wait_s)
        if not res.ok:
            raise UnavailableError(f"cannot start the MPS control daemon: {res.why()}")
        deadline = time.monotonic() + wait_s
        while not self.running():
            if time.monotonic() > deadline:
                raise UnavailableError(f"the MPS control daemon started in {self.pipe_dir} does not answer get_server_list")
            time.sleep(0.1)
        self.owned = True
        log.info("started an MPS control daemon (pipes in %s, logs in %s)", self.pipe_dir, self.log_dir)
        return True

    def stop(self) -> None:
        """Quit the daemon if this server started it (it stops once its clients are gone); a
        daemon someone else started is never stopped."""
        if not self.owned:
            return
        log.info("stopping the MPS control daemon this server started (pipes in %s)", self.pipe_dir)
        res = self._control("quit")
        if not res.ok:
            log.warning("the MPS control daemon did not take quit: %s", res.why())
        self.owned = False
        if self._made_dir is not None:
            shutil.rmtree(self._made_dir, ignore_errors=True)
            self._made_dir = None


def parse_server_list(text: str) -> list[int]:
    """`get_server_list` prints one server pid per line (nothing when no server runs yet)."""
    return [int(t) for t in text.split() if t.isdigit()]


class MpsWatch:
    """Notices an MPS server fault: a server pid seen before that is gone, or a daemon that no
    longer answers. Poll `check` (it runs nvidia-cuda-mps-control: off the event loop)."""

    def __init__(self, daemon: MpsDaemon) -> None:
        self.daemon = daemon
        self.seen: set[int] = set()  # server pids seen since the last fault
        self.answered = False  # the daemon answered at least once

    def check(self) -> str | None:
        """Why every client of this daemon's GPUs must restart now, or None."""
        servers = self.daemon.server_list()
        if servers is None:
            if not self.answered:
                return None
            self.answered = False
            self.seen = set()
            return f"the MPS control daemon in {self.daemon.pipe_dir} stopped answering"
        self.answered = True
        gone = self.seen - set(servers)
        self.seen = set(servers)
        if gone:
            return f"MPS server(s) {', '.join(map(str, sorted(gone)))} exited (an MPS server fault ends every client)"
        return None
