"""Child processes, ports and HTTP for the benchmarks.

Every child runs in its own process group and is registered so that it is
stopped on any exit: normal return, exception, Ctrl-C, SIGTERM or SIGHUP.
All HTTP goes to 127.0.0.1 only, and every wait has a timeout.
"""

from __future__ import annotations

import atexit
import contextlib
import http.client
import os
import signal
import socket
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

HOST = "127.0.0.1"


class StartupError(RuntimeError):
    """A child did not become ready; the message carries its log tail."""

    def __init__(self, message: str, timed_out: bool = False) -> None:
        super().__init__(message)
        self.timed_out = timed_out  # still running, just not ready in time
        self.hwm_kib: int | None = None  # its peak RSS when given up on, if known


def free_port() -> int:
    """A port the kernel says is free now (bind to port 0, read it, close)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        port: int = s.getsockname()[1]
        return port


@dataclass(eq=False)
class Child:
    name: str
    popen: subprocess.Popen[bytes]
    stdout_path: Path
    stderr_path: Path
    started: float  # time.perf_counter() just before the spawn

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def tail(self, lines: int = 30) -> str:
        out = []
        for label, path in (("stderr", self.stderr_path), ("stdout", self.stdout_path)):
            try:
                text = path.read_bytes()[-20000:].decode("utf-8", "replace")
            except OSError:
                continue
            last = text.splitlines()[-lines:]
            if last:
                out.append(f"--- {self.name} {label} (last {len(last)} lines) ---")
                out.extend(last)
        return "\n".join(out) if out else f"--- {self.name}: no output ---"

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM the whole group, then SIGKILL after ``timeout``; the exit status."""
        _children.discard(self)
        if self.popen.poll() is None:
            _signal_group(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                _signal_group(self.popen.pid, signal.SIGKILL)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.popen.wait(5)
        # Anything the child left in its group goes too.
        _signal_group(self.popen.pid, signal.SIGKILL)
        return self.popen.returncode


_children: set[Child] = set()


def _signal_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def stop_all() -> None:
    for child in list(_children):
        child.stop(timeout=5)


def _on_signal(signum: int, _frame: FrameType | None) -> None:
    signal.signal(signum, signal.SIG_DFL)  # a second one ends us at once
    raise KeyboardInterrupt(f"signal {signum}")


def install_cleanup() -> None:
    """Stop all children at exit; SIGTERM/SIGHUP interrupt like Ctrl-C does."""
    atexit.register(stop_all)
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _on_signal)


def spawn(
    name: str,
    argv: Sequence[str],
    logdir: Path,
    *,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> Child:
    logdir.mkdir(parents=True, exist_ok=True)
    out = logdir / f"{name}.stdout.log"
    err = logdir / f"{name}.stderr.log"
    with open(out, "wb") as fo, open(err, "wb") as fe:
        started = time.perf_counter()
        popen = subprocess.Popen(
            list(argv), cwd=cwd, env=dict(env) if env is not None else None,
            stdin=subprocess.DEVNULL, stdout=fo, stderr=fe, start_new_session=True,
        )
    child = Child(name, popen, out, err, started)
    _children.add(child)
    return child


@dataclass
class Resp:
    status: int
    headers: dict[str, str]  # lower-case names
    body: bytes
    seconds: float


def get(
    port: int, path: str, headers: Mapping[str, str] | None = None, timeout: float = 10.0
) -> Resp:
    """One GET on a fresh connection to 127.0.0.1:port; raises OSError on failure."""
    t0 = time.perf_counter()
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        conn.request("GET", path, headers=dict(headers or {}))
        r = conn.getresponse()
        body = r.read()
        hdrs = {k.lower(): v for k, v in r.getheaders()}
        return Resp(r.status, hdrs, body, time.perf_counter() - t0)
    except http.client.HTTPException as e:
        raise OSError(f"HTTP error: {e!r}") from e
    finally:
        conn.close()


def wait_ready(
    child: Child, port: int, path: str, *, timeout: float, interval: float = 0.02
) -> tuple[float, Resp]:
    """Poll ``path`` every ``interval`` until 200; seconds since the spawn, and the answer.

    Raises StartupError (with the child's log tail) if it exits or times out.
    """
    deadline = child.started + timeout
    last = "no answer"
    while True:
        if not child.alive():
            raise StartupError(
                f"{child.name} exited with {child.popen.returncode} before {path} was 200"
                f" ({last})\n{child.tail()}")
        try:
            r = get(port, path, timeout=max(0.2, min(2.0, deadline - time.perf_counter())))
            if r.status == 200:
                return time.perf_counter() - child.started, r
            last = f"last status {r.status}"
        except OSError as e:
            last = f"last error {e.__class__.__name__}"
        if time.perf_counter() > deadline:
            raise StartupError(
                f"{child.name}: {path} not 200 within {timeout:.0f} s ({last})\n{child.tail()}",
                timed_out=True)
        time.sleep(interval)


def vm_hwm_kib(pid: int) -> int | None:
    """Peak resident set size (VmHWM) of a live process, KiB."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        return None
    return None


def children_of(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]


def run_bounded(
    argv: Sequence[str],
    timeout: float,
    *,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> tuple[int | None, str, float]:
    """Run to completion in its own group; (status or None on timeout, output, seconds)."""
    t0 = time.perf_counter()
    popen = subprocess.Popen(
        list(argv), cwd=cwd, env=dict(env) if env is not None else None,
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        out, _ = popen.communicate(timeout=timeout)
        return popen.returncode, out.decode("utf-8", "replace"), time.perf_counter() - t0
    except subprocess.TimeoutExpired:
        _signal_group(popen.pid, signal.SIGKILL)
        out, _ = popen.communicate()
        return None, out.decode("utf-8", "replace"), time.perf_counter() - t0
    except BaseException:
        _signal_group(popen.pid, signal.SIGKILL)
        popen.wait()
        raise
