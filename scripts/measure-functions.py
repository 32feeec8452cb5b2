#!/usr/bin/env python3
"""Measure each Firebreak function as Lambda runs it: init time and peak memory.

Each stage's release binary is started against a local stand-in for the Lambda Runtime API (on a
loopback port). Init is the time from process start to the binary's first poll of
`/runtime/invocation/next`, the moment Lambda's own init phase ends. The stand-in then hands the
function one real event, checks that the function answers it, and reads the process's peak
resident memory (VmHWM) before stopping it.

Usage: scripts/measure-functions.py [--runs N] [--target-dir DIR] [--no-build]
Prints one row per function (median and worst init over N runs, peak memory) and exits non-zero
when a function fails to answer. The budgets (10 ms median init, 24 MiB peak) are printed beside
the figures; they are reported, not enforced, because a loaded machine is not a slow function.
"""

from __future__ import annotations

import argparse
import http.server
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STAGES = ["create", "enrich", "remediate", "notify", "close"]
EVENT = ROOT / "tests/fixtures/events/guardduty/waf-acl-partial-envelope-ec2-ssh-bruteforce.json"
INIT_BUDGET_MS = 10.0
MEMORY_BUDGET_MIB = 24.0
ANSWER_TIMEOUT_S = 10.0


class RuntimeApi(http.server.ThreadingHTTPServer):
    """The three Runtime API calls a function makes: next, response, error."""

    daemon_threads = True

    def __init__(self, event: bytes):
        super().__init__(("127.0.0.1", 0), Handler)
        self.event = event
        self.first_poll: float | None = None
        self.polled = threading.Event()
        self.answered = threading.Event()
        self.answer: tuple[str, bytes] | None = None
        self.served = False
        self.lock = threading.Lock()


class Handler(http.server.BaseHTTPRequestHandler):
    server: RuntimeApi
    protocol_version = "HTTP/1.1"

    def log_message(self, *_args) -> None:
        pass

    def do_GET(self) -> None:
        if not self.path.endswith("/runtime/invocation/next"):
            self.send_error(404)
            return
        srv = self.server
        with srv.lock:
            if srv.first_poll is None:
                srv.first_poll = time.perf_counter()
                srv.polled.set()
            serve = not srv.served
            srv.served = True
        if not serve:
            # The function is idle, waiting for its next event: hold the poll until we stop it.
            srv.answered.wait(ANSWER_TIMEOUT_S)
            time.sleep(ANSWER_TIMEOUT_S)
            return
        deadline_ms = int(time.time() * 1000) + 30_000
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(srv.event)))
        self.send_header("Lambda-Runtime-Aws-Request-Id", "measure-1")
        self.send_header("Lambda-Runtime-Deadline-Ms", str(deadline_ms))
        self.send_header(
            "Lambda-Runtime-Invoked-Function-Arn",
            "arn:aws:lambda:us-east-1:123456789012:function:firebreak-measure",
        )
        self.send_header("Lambda-Runtime-Trace-Id", "Root=1-00000000-000000000000000000000000")
        self.end_headers()
        self.wfile.write(srv.event)

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        kind = "response" if self.path.endswith("/response") else "error"
        self.send_response(202)
        self.send_header("Content-Length", "0")
        self.end_headers()
        srv = self.server
        srv.answer = (kind, body)
        srv.answered.set()


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def run_once(binary: Path, event: bytes) -> tuple[float, float, dict]:
    api = RuntimeApi(event)
    thread = threading.Thread(target=api.serve_forever, daemon=True)
    thread.start()
    env = {
        "PATH": os.environ.get("PATH", ""),
        "AWS_LAMBDA_RUNTIME_API": f"127.0.0.1:{api.server_address[1]}",
        "AWS_LAMBDA_FUNCTION_NAME": f"firebreak-{binary.name}",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "128",
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_LOG_FORMAT": "JSON",
        "AWS_LAMBDA_LOG_LEVEL": "WARN",
        "AWS_REGION": "us-east-1",
        # As deployed: the playbooks are read from disk and validated at init.
        "FIREBREAK_PLAYBOOKS_DIR": str(ROOT / "infra/playbooks"),
    }
    started = time.perf_counter()
    proc = subprocess.Popen([str(binary)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        if not api.polled.wait(ANSWER_TIMEOUT_S):
            raise RuntimeError(f"{binary.name}: never polled the Runtime API: {stderr_of(proc)}")
        init_ms = ((api.first_poll or started) - started) * 1000
        if not api.answered.wait(ANSWER_TIMEOUT_S):
            raise RuntimeError(f"{binary.name}: never answered the event: {stderr_of(proc)}")
        # The answer is posted before the next poll; give the runtime a moment to settle so
        # the high-water mark includes the whole invocation.
        time.sleep(0.05)
        peak = peak_rss_mib(proc.pid)
        kind, body = api.answer or ("error", b"")
        if kind != "response":
            raise RuntimeError(f"{binary.name}: reported an invocation error: {body[:300]!r}")
        return init_ms, peak, json.loads(body)
    finally:
        proc.kill()
        proc.wait()
        api.shutdown()
        api.server_close()


def stderr_of(proc: subprocess.Popen) -> str:
    proc.kill()
    _, err = proc.communicate()
    return (err or b"").decode(errors="replace").strip()[-500:]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--target-dir", type=Path, default=None)
    parser.add_argument("--no-build", action="store_true")
    args = parser.parse_args()

    target = args.target_dir or Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    if not args.no_build:
        packages = [arg for s in STAGES for arg in ("-p", f"firebreak-{s}")]
        subprocess.run(["cargo", "build", "--release", "--locked", *packages], cwd=ROOT, check=True)
    event = EVENT.read_bytes()

    print(f"{'function':<20} {'init median':>12} {'init max':>10} {'peak memory':>12}   answer")
    failed = False
    for stage in STAGES:
        binary = target / "release" / f"firebreak-{stage}"
        try:
            samples = [run_once(binary, event) for _ in range(args.runs)]
        except (RuntimeError, OSError, json.JSONDecodeError) as err:
            print(f"firebreak-{stage:<10} FAILED: {err}")
            failed = True
            continue
        inits = [s[0] for s in samples]
        peak = max(s[1] for s in samples)
        answer = samples[-1][2]
        results = answer.get("results") if isinstance(answer, dict) else None
        summary = f"{len(results)} result(s)" if isinstance(results, list) else "unexpected shape"
        if not isinstance(results, list) or not results:
            failed = True
        print(
            f"firebreak-{stage:<10} {statistics.median(inits):>9.2f} ms {max(inits):>7.2f} ms"
            f" {peak:>8.1f} MiB   {summary}"
        )
    print(
        f"budgets: init median <= {INIT_BUDGET_MS:.0f} ms, peak memory <= {MEMORY_BUDGET_MIB:.0f} MiB"
        f" ({args.runs} runs each, x86_64 release build on this machine)"
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
