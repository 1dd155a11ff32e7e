"""Starting ``portfolio-core serve`` in a test: a free port and waiting until it answers."""

from __future__ import annotations

import socket
import subprocess
import time
import urllib.request


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_ready(port: int, proc: subprocess.Popen[str], *, within: float = 60.0) -> None:
    """Return once the server answers ``/healthz``; otherwise stop it and raise with its output.

    Never blocks on the server's output: ``serve --workers N`` leaves worker processes that
    hold the pipe open after the parent exits, so the output is collected with a deadline.
    """
    deadline = time.monotonic() + within
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1).read()
            return
        except OSError:
            exited = proc.poll()
            if exited is not None or time.monotonic() > deadline:
                if exited is None:
                    proc.kill()
                try:
                    out, _ = proc.communicate(timeout=10)
                except subprocess.TimeoutExpired:
                    out = "(its output could not be collected: a child still holds the pipe)"
                why = f"exited with {exited}" if exited is not None else f"not ready in {within} s"
                raise RuntimeError(f"portfolio-core serve {why}: {out}") from None
            time.sleep(0.05)
