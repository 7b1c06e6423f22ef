"""A real one-node Slurm cluster for the tests (session-scoped fixture ``slurm_cluster``).

Everything lives in one temporary directory: its own ``slurm.conf`` (free ports, so a second
test session on the same machine does not collide), state and spool directories, pid files and
logs. ``munged`` is started if none answers. The daemons this fixture started are stopped by pid
at the end; a munged that was already running is left alone.

Where Slurm cannot be had (commands missing: install ``slurm-wlm`` and ``munge``, which
``.ci/run`` does as root), the tests that use the fixture skip and say why; with
``ALEM_REQUIRE_SLURM=1`` (set by ``.ci/run`` where it could install Slurm) they fail instead.

Use it from a test module with ``pytest_plugins = ["tests._slurm"]`` or by importing the fixture.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

DAEMONS = ("slurmctld", "slurmd", "sbatch", "squeue", "scancel", "munged")


@dataclass
class SlurmCluster:
    root: Path
    conf: Path
    host: str
    partition: str = "debug"

    def run(self, *command: str, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run(list(command), capture_output=True, text=True, check=check,
                              env={**os.environ, "SLURM_CONF": str(self.conf)}, timeout=60)

    def queue(self) -> dict[str, str]:
        """Job id -> compact state of every job squeue still shows."""
        out = self.run("squeue", "--noheader", "-o", "%i %t").stdout
        return dict(line.split() for line in out.splitlines() if line.strip())

    def job_names(self) -> dict[str, str]:
        out = self.run("squeue", "--noheader", "-o", "%i %j").stdout
        return dict(line.split() for line in out.splitlines() if line.strip())


def _missing_reason() -> str | None:
    missing = [name for name in DAEMONS if shutil.which(name) is None and not Path(f"/usr/sbin/{name}").exists()]
    if missing:
        return (f"Slurm is not installed here ({', '.join(missing)} missing): install slurm-wlm and munge "
                "(.ci/run does it with apt-get when run as root)")
    if os.geteuid() != 0:
        return "a private Slurm cluster needs root (slurmd runs jobs as their user); run the tests as root"
    return None


def _which(name: str) -> str:
    return shutil.which(name) or f"/usr/sbin/{name}"


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _munge_answers() -> bool:
    try:
        encoded = subprocess.run(["munge", "-n"], capture_output=True, timeout=10)
        if encoded.returncode != 0:
            return False
        return subprocess.run(["unmunge"], input=encoded.stdout, capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def _read_pid(path: Path, timeout_s: float = 20.0) -> int:
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        try:
            return int(path.read_text().strip())
        except (FileNotFoundError, ValueError):
            time.sleep(0.1)
    raise RuntimeError(f"{path} never appeared")


def _stop(pid: int, timeout_s: float = 20.0) -> None:
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def write_slurm_conf(root: Path, host: str, cpus: int, min_job_age_s: int) -> Path:
    ctld_port, slurmd_port = _free_ports(2)
    for sub in ("state", "spool", "log"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    conf = root / "slurm.conf"
    conf.write_text("\n".join([
        f"ClusterName=alemtest{ctld_port}",
        f"SlurmctldHost={host}",
        f"SlurmctldPort={ctld_port}",
        f"SlurmdPort={slurmd_port}",
        "SlurmUser=root",
        "SlurmdUser=root",
        "AuthType=auth/munge",
        f"StateSaveLocation={root / 'state'}",
        f"SlurmdSpoolDir={root / 'spool'}",
        f"SlurmctldPidFile={root / 'slurmctld.pid'}",
        f"SlurmdPidFile={root / 'slurmd.pid'}",
        f"SlurmctldLogFile={root / 'log' / 'slurmctld.log'}",
        f"SlurmdLogFile={root / 'log' / 'slurmd.log'}",
        "ProctrackType=proctrack/linuxproc",
        "TaskPlugin=task/none",
        "SchedulerType=sched/backfill",
        "SelectType=select/cons_tres",
        "SelectTypeParameters=CR_Core",
        "ReturnToService=2",
        "MpiDefault=none",
        "JobAcctGatherType=jobacct_gather/none",
        "AccountingStorageType=accounting_storage/none",
        # finished jobs leave squeue soon, as on a cluster without accounting (only sooner)
        f"MinJobAge={min_job_age_s}",
        "SchedulerParameters=sched_interval=2",
        f"NodeName={host} CPUs={cpus} RealMemory=4000 State=UNKNOWN",
        f"PartitionName=debug Nodes={host} Default=YES MaxTime=INFINITE State=UP",
        "",
    ]))
    return conf


@pytest.fixture(scope="session")
def slurm_cluster(tmp_path_factory):
    """A running one-node Slurm (slurmctld + slurmd); ``SLURM_CONF`` points at it for the session."""
    reason = _missing_reason()
    if reason:
        if os.environ.get("ALEM_REQUIRE_SLURM") == "1":
            pytest.fail(f"ALEM_REQUIRE_SLURM=1 but {reason}")
        pytest.skip(reason)
    root = tmp_path_factory.mktemp("slurm")
    host = socket.gethostname().split(".")[0]
    conf = write_slurm_conf(root, host, cpus=os.cpu_count() or 2, min_job_age_s=30)
    started: list[int] = []
    old_conf = os.environ.get("SLURM_CONF")
    os.environ["SLURM_CONF"] = str(conf)
    try:
        if not _munge_answers():
            Path("/run/munge").mkdir(parents=True, exist_ok=True)
            pid_file = root / "munged.pid"
            subprocess.run([_which("munged"), "--force", f"--pid-file={pid_file}", "--socket=/run/munge/munge.socket.2"],
                           check=True, capture_output=True, timeout=30)
            started.append(_read_pid(pid_file))
            if not _munge_answers():
                pytest.skip("munged was started but does not answer (see /var/log/munge)")
        env = {**os.environ, "SLURM_CONF": str(conf)}
        subprocess.run([_which("slurmctld"), "-f", str(conf)], check=True, env=env, capture_output=True, timeout=30)
        started.append(_read_pid(root / "slurmctld.pid"))
        subprocess.run([_which("slurmd"), "-f", str(conf)], check=True, env=env, capture_output=True, timeout=30)
        started.append(_read_pid(root / "slurmd.pid"))
        cluster = SlurmCluster(root, conf, host)
        deadline = time.time() + 60
        state = ""
        while time.time() < deadline:
            state = cluster.run("sinfo", "--noheader", "-o", "%t", check=False).stdout.strip()
            if state == "idle":
                break
            time.sleep(0.5)
        else:
            log = (root / "log" / "slurmctld.log").read_text()[-2000:]
            raise RuntimeError(f"the test Slurm node never became idle (sinfo: {state!r}); slurmctld.log:\n{log}")
        yield cluster
    finally:
        # slurmd first (it runs the jobs), then the controller, then a munged we started
        for pid in reversed(started):
            _stop(pid)
        if old_conf is None:
            os.environ.pop("SLURM_CONF", None)
        else:
            os.environ["SLURM_CONF"] = old_conf
