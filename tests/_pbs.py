"""A one-node PBS stand-in for the tests (fixture ``pbs_queue``): ``qsub``, ``qstat`` and ``qdel``
on ``PATH`` that run what qtoolkit's PBS adapter writes and answer in PBS's own formats.

No PBS server can be installed here (Debian ships neither OpenPBS nor Torque), so these three
commands stand in for one: ``qsub SCRIPT`` reads the script's ``#PBS -N/-o/-l walltime`` lines,
starts it with ``bash`` in the background in its submission directory with ``PBS_JOBID`` and
``PBS_O_WORKDIR`` set, and prints ``<n>.pbs-test``; ``qstat -f -w -u USER`` lists the jobs whose
process is alive in the ``qstat -f`` layout qtoolkit parses (``Job Id:``, ``Job_Name``,
``job_state = R``, ``Job_Owner``, ``queue``, ``Resource_List.*``); ``qdel ID`` kills the job's
process group. What is exercised for real: qtoolkit's script and directives, its ``qsub``/``qstat``
command lines and output parsing, and the job body running from the rendered script.

Use it from a test module with ``pytest_plugins = ["tests._pbs"]``.
"""

from __future__ import annotations

import os
import signal
import stat
from dataclasses import dataclass
from pathlib import Path

import pytest

QSUB = r'''#!/usr/bin/env python3
import os, re, subprocess, sys
from pathlib import Path
root = Path(os.environ["ALEM_TEST_PBS_ROOT"])
script = Path(sys.argv[-1]).resolve()
text = script.read_text()
def directive(flag, default=""):
    found = re.search(r"^#PBS\s+" + re.escape(flag) + r"\s+(\S+)", text, flags=re.M)
    return found.group(1) if found else default
number = len(list((root / "jobs").iterdir())) + 1
job_id = f"{number}.pbs-test"
job = root / "jobs" / job_id
job.mkdir()
(job / "name").write_text(directive("-N", script.name))
walltime = re.search(r"^#PBS\s+-l\s+walltime=(\S+)", text, flags=re.M)
(job / "walltime").write_text(walltime.group(1) if walltime else "01:00:00")
out = directive("-o", str(Path.cwd() / f"{script.name}.o{number}"))
env = {**os.environ, "PBS_JOBID": job_id, "PBS_O_WORKDIR": str(Path.cwd())}
with open(out, "ab") as log:
    child = subprocess.Popen(["bash", str(script)], cwd=Path.cwd(), env=env, stdin=subprocess.DEVNULL,
                             stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
(job / "pid").write_text(str(child.pid))
print(job_id)
'''

QSTAT = r'''#!/usr/bin/env python3
import getpass, os, socket
from pathlib import Path
root = Path(os.environ["ALEM_TEST_PBS_ROOT"])
for job in sorted((root / "jobs").iterdir()):
    pid = int((job / "pid").read_text())
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        continue
    if state == "Z":
        continue
    print(f"Job Id: {job.name}")
    print(f"    Job_Name = {(job / 'name').read_text()}")
    print(f"    Job_Owner = {getpass.getuser()}@{socket.gethostname()}")
    print("    job_state = R")
    print("    queue = workq")
    print("    Resource_List.ncpus = 1")
    print("    Resource_List.nodect = 1")
    print(f"    Resource_List.walltime = {(job / 'walltime').read_text()}")
    print()
'''

QDEL = r'''#!/usr/bin/env python3
import os, signal, sys
from pathlib import Path
job = Path(os.environ["ALEM_TEST_PBS_ROOT"]) / "jobs" / sys.argv[-1]
try:
    os.killpg(int((job / "pid").read_text()), signal.SIGTERM)
except (OSError, ValueError):
    pass
'''


@dataclass
class PbsQueue:
    root: Path

    def job_names(self) -> dict[str, str]:
        """Job id → name of every job ever submitted."""
        return {job.name: (job / "name").read_text() for job in sorted((self.root / "jobs").iterdir())}

    def pid(self, job_id: str) -> int:
        return int((self.root / "jobs" / job_id / "pid").read_text())


@pytest.fixture
def pbs_queue(tmp_path, monkeypatch) -> PbsQueue:
    root = tmp_path / "pbs"
    (root / "jobs").mkdir(parents=True)
    bin_dir = root / "bin"
    bin_dir.mkdir()
    for name, body in {"qsub": QSUB, "qstat": QSTAT, "qdel": QDEL}.items():
        path = bin_dir / name
        path.write_text(body)
        path.chmod(path.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("ALEM_TEST_PBS_ROOT", str(root))
    queue = PbsQueue(root)
    yield queue
    for job in (root / "jobs").iterdir():  # nothing the test started outlives it
        try:
            os.killpg(int((job / "pid").read_text()), signal.SIGKILL)
        except OSError:
            pass
