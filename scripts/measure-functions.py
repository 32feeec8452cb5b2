#!/usr/bin/env python3
"""Measure each Firebreak function as Lambda runs it: init time and peak memory.

Each stage's release binary is started against a local stand-in for the Lambda Runtime API (on a
loopback port), configured as the template configures it (table, bus, topics, dry-run switch,
playbooks) and pointed at a local AWS: `moto_server` on another loopback port, holding a table
shaped like IncidentTable, an event bus, two SNS topics and the dry-run switch parameter. Init is
the time from process start to the binary's first poll of `/runtime/invocation/next`, the moment
Lambda's own init phase ends. The
stand-in then hands the function one event it really handles, waits for its answer, and reads
the process's peak resident memory (VmHWM) before stopping it.

The events: create gets a real GuardDuty finding; enrich, remediate, notify and close get the
lifecycle event that would reach them (Incident Opened, Incident Enriched, Incident Opened,
Incident Resolution Requested) for the incident create opened, or, if create opened none, for a
minimal valid incident the store does not hold. An error the function answers with (its
invocation error response) counts as answered and is shown as such; a function that never
polls, or never answers, fails the run.

Usage: scripts/measure-functions.py [--runs N] [--target-dir DIR] [--no-build]
Prints one row per function (median and worst init over N runs, peak memory, the answer) and
exits non-zero when a function fails to answer. The budgets (10 ms median init, 24 MiB peak) are
printed beside the figures; they are reported, not enforced, because a loaded machine is not a
slow function. Needs moto's server (`pip install "moto[server]"`, which brings boto3).
"""

from __future__ import annotations

import argparse
import datetime as dt
import http.server
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STAGES = ["create", "enrich", "remediate", "notify", "close"]
SIGNAL = ROOT / "tests/fixtures/events/guardduty/waf-acl-partial-envelope-ec2-ssh-bruteforce.json"
INIT_BUDGET_MS = 10.0
MEMORY_BUDGET_MIB = 24.0
ANSWER_TIMEOUT_S = 10.0
MOTO_START_TIMEOUT_S = 30.0

REGION = "us-east-1"
ACCOUNT = "123456789012"  # moto's account
TABLE = "firebreak-measure-incidents"
BUS = "firebreak-measure-lifecycle"
DRY_RUN_PARAMETER = "/firebreak-measure/dry-run"
INSTALL_HINT = (
    'moto\'s server is needed: pip install "moto[server]" (it brings boto3). Install it into the'
    " Python that runs this script, not into the SAM CLI venv."
)

# The lifecycle event each later stage is given, by detail-type, and the slug its event_id uses
# (shared/src/lifecycle.rs, docs/lifecycle.md).
LIFECYCLE_INPUT = {
    "enrich": ("Incident Opened", "opened"),
    "remediate": ("Incident Enriched", "enriched"),
    "notify": ("Incident Opened", "opened"),
    "close": ("Incident Resolution Requested", "resolution-requested"),
}


# ------------------------------------------------------------------------------------------
# The local AWS.


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Moto:
    """A `moto_server` on a free loopback port, stopped by `stop()` (or on leaving `with`)."""

    def __init__(self) -> None:
        exe = shutil.which("moto_server")
        if exe is None:
            raise SystemExit(f"moto_server not found on PATH. {INSTALL_HINT}")
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.log = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(
            [exe, "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + MOTO_START_TIMEOUT_S
        while True:
            if self.proc.poll() is not None:
                self.stop()
                raise SystemExit(f"moto_server exited at start: {self.output()}")
            try:
                with urllib.request.urlopen(f"{self.endpoint}/moto-api/data.json", timeout=1):
                    return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                if time.monotonic() > deadline:
                    out = self.output()
                    self.stop()
                    raise SystemExit(f"moto_server did not answer within {MOTO_START_TIMEOUT_S:.0f} s: {out}")
                time.sleep(0.1)

    def output(self) -> str:
        self.log.seek(0)
        return self.log.read().decode(errors="replace").strip()[-500:]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()

    def __enter__(self) -> "Moto":
        return self

    def __exit__(self, *_exc) -> None:
        self.stop()


def clients(endpoint: str):
    try:
        import boto3
    except ImportError:
        raise SystemExit(f"boto3 is not importable by {sys.executable}. {INSTALL_HINT}") from None
    session = boto3.session.Session(
        aws_access_key_id="testing", aws_secret_access_key="testing", region_name=REGION
    )
    return {name: session.client(name, endpoint_url=endpoint) for name in ("dynamodb", "events", "sns", "ssm")}


def create_stack(aws) -> dict[str, str]:
    """The stack's stores, shaped as template.yaml declares them. Returns the functions' env."""
    ddb = aws["dynamodb"]
    # IncidentTable: pk/sk, the sparse by-status index, TTL on expires_at.
    ddb.create_table(
        TableName=TABLE,
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[
            {"AttributeName": n, "AttributeType": "S"} for n in ("pk", "sk", "status", "opened_at")
        ],
        KeySchema=[
            {"AttributeName": "pk", "KeyType": "HASH"},
            {"AttributeName": "sk", "KeyType": "RANGE"},
        ],
        GlobalSecondaryIndexes=[
            {
                "IndexName": "by-status",
                "KeySchema": [
                    {"AttributeName": "status", "KeyType": "HASH"},
                    {"AttributeName": "opened_at", "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "ALL"},
            }
        ],
    )
    ddb.update_time_to_live(
        TableName=TABLE, TimeToLiveSpecification={"AttributeName": "expires_at", "Enabled": True}
    )
    aws["events"].create_event_bus(Name=BUS)
    topic = aws["sns"].create_topic(Name="firebreak-measure")["TopicArn"]
    escalation = aws["sns"].create_topic(Name="firebreak-measure-escalation")["TopicArn"]
    # DryRunSwitch, deployed on: remediation only records what it would do.
    aws["ssm"].put_parameter(Name=DRY_RUN_PARAMETER, Type="String", Value="true")
    return {
        "FIREBREAK_TABLE": TABLE,
        "FIREBREAK_BUS": BUS,
        "FIREBREAK_TOPIC_ARN": topic,
        "FIREBREAK_ESCALATION_TOPIC_ARN": escalation,
        "FIREBREAK_RETENTION_DAYS": "365",
        "FIREBREAK_INCIDENT_MANAGER": "disabled",
        # Only remediate reads it; the others ignore it.
        "FIREBREAK_DRY_RUN_PARAMETER": DRY_RUN_PARAMETER,
    }


def opened_incident(aws) -> dict | None:
    """The incident create opened, read back from the table (its `doc`), if there is one."""
    pages = aws["dynamodb"].get_paginator("scan").paginate(TableName=TABLE)
    for page in pages:
        for item in page.get("Items", []):
            if item.get("sk", {}).get("S") == "incident" and "doc" in item:
                return json.loads(item["doc"]["S"])
    return None


def lifecycle_event(stage: str, incident: dict | None) -> tuple[bytes, str]:
    """The lifecycle event `stage` is given, as EventBridge delivers it, and a label for it."""
    detail_type, slug = LIFECYCLE_INPUT[stage]
    now = dt.datetime.now(dt.timezone.utc)
    if incident is None:
        incident = {
            "id": "INC-20260101-00000000",
            "dedupe_key": "measure:none",
            "status": "open",
            "severity": "high",
            "playbook": None,
            "title": "A minimal incident the store does not hold",
            "version": 1,
        }
        whose = "a minimal incident not in the store"
    else:
        whose = f"{incident['id']}, opened by create"
    detail = {
        "schema_version": "1",
        "event_id": f"{incident['id']}/{slug}",
        "incident_id": incident["id"],
        "dedupe_key": incident["dedupe_key"],
        "status": incident["status"],
        "severity": incident["severity"],
        "playbook": incident.get("playbook"),
        "title": incident["title"],
        "version": incident["version"],
        "at": now.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
    }
    if stage == "close":
        detail["actor"] = "cli:measure"
        detail["reason"] = "measure-functions.py"
    event = {
        "version": "0",
        "id": "00000000-0000-4000-8000-000000000001",
        "detail-type": detail_type,
        "source": "firebreak",
        "account": ACCOUNT,
        "time": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": REGION,
        "resources": [],
        "detail": detail,
    }
    return json.dumps(event).encode(), f"{detail_type} for {whose}"


# ------------------------------------------------------------------------------------------
# The Lambda Runtime API stand-in.


class RuntimeApi(http.server.ThreadingHTTPServer):
    """The Runtime API calls a function makes: next, response, error, init error."""

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
            f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:firebreak-measure",
        )
        self.send_header("Lambda-Runtime-Trace-Id", "Root=1-00000000-000000000000000000000000")
        self.end_headers()
        self.wfile.write(srv.event)

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        if self.path.endswith("/init/error"):
            kind = "init error"
        elif self.path.endswith("/response"):
            kind = "response"
        else:
            kind = "error"
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


def run_once(binary: Path, event: bytes, config: dict[str, str], endpoint: str) -> tuple[float, float, str, bytes]:
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
        "AWS_REGION": REGION,
        "AWS_DEFAULT_REGION": REGION,
        # Lambda hands the function temporary credentials; these are moto's fakes.
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        # Every SDK client goes to moto, and nothing is read from this machine's ~/.aws or IMDS.
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "AWS_EC2_METADATA_DISABLED": "true",
        # As deployed: the playbooks are read from disk and validated at init.
        "FIREBREAK_PLAYBOOKS_DIR": str(ROOT / "infra/playbooks"),
        **config,
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
        if kind == "init error":
            raise RuntimeError(f"{binary.name}: failed its init: {body[:300]!r}")
        return init_ms, peak, kind, body
    finally:
        proc.kill()
        proc.wait()
        api.shutdown()
        api.server_close()


def stderr_of(proc: subprocess.Popen) -> str:
    proc.kill()
    _, err = proc.communicate()
    return (err or b"").decode(errors="replace").strip()[-500:]


def describe(kind: str, body: bytes) -> str:
    """One short phrase for what the function answered."""
    try:
        answer = json.loads(body) if body else None
    except json.JSONDecodeError:
        return f"{kind}: not JSON: {body[:80]!r}"
    if kind == "error":
        if isinstance(answer, dict):
            return f"error response: {answer.get('errorType', '?')}: {str(answer.get('errorMessage', ''))[:80]}"
        return f"error response: {str(answer)[:80]}"
    if isinstance(answer, dict):
        results = answer.get("results")
        if isinstance(results, list):
            return f"response: {len(results)} result(s)"
        return "response: {" + ", ".join(list(answer)[:6]) + "}"
    return f"response: {str(answer)[:80]}"


def measure(stage: str, binary: Path, event: bytes, runs: int, config: dict[str, str], endpoint: str):
    samples = [run_once(binary, event, config, endpoint) for _ in range(runs)]
    inits = [s[0] for s in samples]
    peak = max(s[1] for s in samples)
    first = describe(samples[0][2], samples[0][3])
    last = describe(samples[-1][2], samples[-1][3])
    answer = first if first == last else f"first {first}; then {last}"
    print(
        f"firebreak-{stage:<10} {statistics.median(inits):>9.2f} ms {max(inits):>7.2f} ms"
        f" {peak:>8.1f} MiB   {answer}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--target-dir", type=Path, default=None)
    parser.add_argument("--no-build", action="store_true")
    args = parser.parse_args()

    target = args.target_dir or Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    if shutil.which("moto_server") is None:
        print(f"moto_server not found on PATH. {INSTALL_HINT}", file=sys.stderr)
        return 2
    if not args.no_build:
        packages = [arg for s in STAGES for arg in ("-p", f"firebreak-{s}")]
        subprocess.run(["cargo", "build", "--release", "--locked", *packages], cwd=ROOT, check=True)

    failed = False
    with Moto() as moto:
        aws = clients(moto.endpoint)
        config = create_stack(aws)
        print(f"local AWS: moto_server at {moto.endpoint} (table, bus, two topics, dry-run switch)")
        print(f"{'function':<20} {'init median':>12} {'init max':>10} {'peak memory':>12}   answer")
        inputs: list[str] = []
        for stage in STAGES:
            binary = target / "release" / f"firebreak-{stage}"
            if stage == "create":
                event, label = SIGNAL.read_bytes(), f"GuardDuty finding {SIGNAL.name}"
            else:
                event, label = lifecycle_event(stage, opened_incident(aws))
            inputs.append(f"  firebreak-{stage}: {label}")
            try:
                measure(stage, binary, event, args.runs, config, moto.endpoint)
            except (RuntimeError, OSError) as err:
                print(f"firebreak-{stage:<10} FAILED: {err}")
                failed = True
    print("events:")
    print("\n".join(inputs))
    print(
        f"budgets: init median <= {INIT_BUDGET_MS:.0f} ms, peak memory <= {MEMORY_BUDGET_MIB:.0f} MiB"
        f" ({args.runs} runs each, release build on this machine; an error response counts as answered)"
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
