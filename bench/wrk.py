"""Run ``wrk`` against 127.0.0.1 and parse what it prints."""

from __future__ import annotations

import re
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field

from . import procs

_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}


@dataclass
class WrkResult:
    rps: float
    requests: int
    latency_p50_ms: float | None = None
    latency_p99_ms: float | None = None
    non_2xx_3xx: int = 0
    socket_errors: dict[str, int] = field(default_factory=dict)
    output: str = ""

    @property
    def errors(self) -> int:
        return self.non_2xx_3xx + sum(self.socket_errors.values())


def available() -> str | None:
    return shutil.which("wrk")


def version() -> str:
    binary = available()
    if not binary:
        return "not installed"
    _, out, _ = procs.run_bounded([binary, "-v"], timeout=10)
    first = out.strip().splitlines()[0] if out.strip() else "?"
    m = re.match(r"wrk\s+(\S+)", first)
    return m.group(1) if m else first


def _ms(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m|h)", text)
    if not m:
        raise ValueError(text)
    return float(m.group(1)) * _UNITS[m.group(2)]


def parse(out: str) -> WrkResult:
    m = re.search(r"Requests/sec:\s*([\d.]+)", out)
    if not m:
        raise ValueError(f"no Requests/sec in wrk output:\n{out[-2000:]}")
    rps = float(m.group(1))
    n = re.search(r"(\d+) requests in", out)
    res = WrkResult(rps=rps, requests=int(n.group(1)) if n else 0)
    for pct, attr in (("50", "latency_p50_ms"), ("99", "latency_p99_ms")):
        lm = re.search(rf"^\s*{pct}(?:\.000)?%\s+(\S+)", out, re.M)
        if lm:
            setattr(res, attr, _ms(lm.group(1)))
    e = re.search(r"Non-2xx or 3xx responses:\s*(\d+)", out)
    if e:
        res.non_2xx_3xx = int(e.group(1))
    s = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if s:
        res.socket_errors = {
            k: int(v) for k, v in zip(("connect", "read", "write", "timeout"), s.groups(),
                                      strict=True) if int(v)}
    return res


def run(
    port: int,
    path: str,
    *,
    duration: float,
    headers: Mapping[str, str] | None = None,
    threads: int = 2,
    connections: int = 32,
) -> WrkResult:
    binary = available()
    if not binary:
        raise FileNotFoundError("wrk is not installed (Debian package wrk)")
    argv = [binary, f"-t{threads}", f"-c{connections}", f"-d{max(1, round(duration))}s",
            "--latency", "--timeout", "5s"]
    for k, v in (headers or {}).items():
        argv += ["-H", f"{k}: {v}"]
    argv.append(f"http://{procs.HOST}:{port}{path}")
    status, out, _ = procs.run_bounded(argv, timeout=duration + 30)
    if status is None:
        raise TimeoutError(f"wrk did not finish within {duration + 30:.0f} s")
    if status != 0:
        raise RuntimeError(f"wrk exited with {status}:\n{out[-2000:]}")
    res = parse(out)
    res.output = f"$ {' '.join(argv)}\n{out}"
    return res
