"""What one hop between two processes costs on this machine: a byte sent back and forth over a
socketpair between a parent and a forked child, both blocking. Prints the round trip and the
parent's CPU per round trip (each side sleeps and is woken once per trip).

    python3 benchmarks/datapath/wakeup.py [--trips 5000]
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
import time


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trips", type=int, default=5000)
    trips = ap.parse_args().trips
    parent, child = socket.socketpair()
    pid = os.fork()
    if pid == 0:
        parent.close()
        while data := child.recv(64):
            child.send(data)
        os._exit(0)
    child.close()
    for _ in range(100):
        parent.send(b"x")
        parent.recv(64)
    t0, c0 = time.perf_counter(), time.process_time()
    for _ in range(trips):
        parent.send(b"x")
        parent.recv(64)
    wall_us = (time.perf_counter() - t0) / trips * 1e6
    cpu_us = (time.process_time() - c0) / trips * 1e6
    parent.close()
    os.waitpid(pid, 0)
    sys.stdout.write(f"round trip between two processes: {wall_us:.1f} µs; CPU of one side per trip: {cpu_us:.1f} µs\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
