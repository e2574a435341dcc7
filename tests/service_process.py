"""The service as operators run it: ``python app.py`` in a child process on a loopback
port, its access log (stdout) and service log (stderr) in files. Every wait is bounded;
:class:`Services` kills whatever is still running when a test ends."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
STARTUP_SECONDS = 120.0  # a cold interpreter on a busy two-core CI machine is slow
_SERVING = re.compile(r"serving .* on http://(\S+):(\d+)/")
ACCESS_LINE = re.compile(
    r'(?P<remote>\S+) - - \[(?P<time>[^\]]+)\] '
    r'"(?P<method>[A-Z]+) (?P<uri>\S+) (?P<protocol>HTTP/\d\.\d)" '
    r'(?P<status>\d{3}) (?P<bytes>\d+|-) '
    r'"(?P<referer>(?:[^"\\]|\\.)*)" "(?P<agent>(?:[^"\\]|\\.)*)"')
"""One line of the combined log format (Apache's and nginx's 'combined')."""


def free_port() -> int:
    """A loopback port nobody listens on now (for nginx, which cannot report port 0)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def clean_env() -> dict[str, str]:
    """The environment without FEEDS_* settings a developer may have exported."""
    return {k: v for k, v in os.environ.items() if not k.startswith("FEEDS_")}


def wait_for(predicate: object, seconds: float, what: str, step: float = 0.1) -> None:
    """Poll ``predicate()`` until true; AssertionError naming ``what`` after ``seconds``."""
    assert callable(predicate)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(step)
    raise AssertionError(f"timed out after {seconds:.0f} s waiting for {what}")


def _settled(path: Path, quiet: float = 0.15, seconds: float = 10.0) -> None:
    """Return once ``path`` has kept its size for ``quiet`` seconds (at most ``seconds``)."""
    deadline = time.monotonic() + seconds
    size = -1
    while time.monotonic() < deadline:
        now = path.stat().st_size if path.exists() else 0
        if now == size:
            return
        size = now
        time.sleep(quiet)


@dataclass
class Service:
    proc: subprocess.Popen[bytes]
    stdout: Path
    stderr: Path
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        return self.stderr.read_text("utf-8", errors="replace")

    def access_lines(self) -> list[str]:
        """The access log so far. A running service writes it from a thread of its own,
        a moment after each answer: wait until the file has stopped growing."""
        if self.proc.poll() is None:
            _settled(self.stdout)
        return self.stdout.read_text("utf-8", errors="replace").splitlines()

    def access_log(self) -> list[dict[str, str]]:
        """The combined-format access log, parsed; a line that does not parse fails."""
        entries = []
        for line in self.access_lines():
            found = ACCESS_LINE.fullmatch(line)
            assert found, f"not a combined log line: {line!r}"
            entries.append(found.groupdict())
        return entries

    def healthy(self) -> bool:
        try:
            return requests.get(self.url + "/healthz", timeout=5).status_code == 200
        except requests.RequestException:
            return False

    def stop(self, signum: int = signal.SIGTERM, seconds: float = 60.0) -> int:
        """Send ``signum`` and wait for the exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(signum)
        return self.proc.wait(timeout=seconds)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=30)


@dataclass
class Services:
    """Starts service processes for one test and kills the survivors at the end."""

    folder: Path
    started: list[Service] = field(default_factory=list)

    def launch(self, content: Path, *flags: str, name: str = "svc",
               env: dict[str, str] | None = None) -> Service:
        """Start ``python app.py`` on port 0 (the kernel picks); do not wait. ``env``:
        settings given as environment variables (FEEDS_*)."""
        stdout = self.folder / f"{name}.stdout"
        stderr = self.folder / f"{name}.stderr"
        cmd = [sys.executable, str(ROOT / "app.py"), "--content", str(content),
               "--host", "127.0.0.1", "--port", "0", *flags]
        with open(stdout, "wb") as out, open(stderr, "wb") as err:
            proc = subprocess.Popen(cmd, stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                                    cwd=ROOT, env={**clean_env(), **(env or {})})
        service = Service(proc, stdout, stderr)
        self.started.append(service)
        return service

    @staticmethod
    def wait(service: Service, ready: bool = True) -> Service:
        """Wait until it listens (its log names the port), and with ``ready`` until
        /healthz answers 200."""

        def listening() -> bool:
            if service.proc.poll() is not None:
                raise AssertionError(
                    f"exited with {service.proc.returncode}:\n{service.log()}")
            found = _SERVING.search(service.log())
            if found:
                service.port = int(found.group(2))
            return found is not None

        wait_for(listening, STARTUP_SECONDS, f"{service.stderr.stem} to listen")
        if ready:
            wait_for(service.healthy, STARTUP_SECONDS,
                     f"{service.stderr.stem} to load its content")
        return service

    def start(self, content: Path, *flags: str, name: str = "svc",
              ready: bool = True) -> Service:
        return self.wait(self.launch(content, *flags, name=name), ready)

    def close(self) -> None:
        for service in self.started:
            service.kill()
