"""Stand-ins for Slurm's commands (``sbatch``, ``srun``, ``scontrol``, ``squeue``) so datatrove's Slurm executor runs
on this machine: ``sbatch`` runs the array tasks of the script at once, one after the other."""

from __future__ import annotations

import os
import sys
from pathlib import Path

FAKE_SBATCH = """#!{python}
# A stand-in for Slurm's sbatch: runs the array tasks of the script at once, one after the other (only those in
# FAKE_SLURM_ONLY when it is set: the others "die"), logs its calls, prints what sbatch prints.
import os, re, subprocess, sys
script = sys.argv[-1]
text = open(script).read()
env = dict(os.environ)
for arg in sys.argv[1:-1]:
    if arg.startswith("--export=ALL,"):
        env.update(item.split("=", 1) for item in arg[len("--export=ALL,"):].split(","))
array = re.search(r"#SBATCH --array=(\\d+)-(\\d+)", text)
indices = range(int(array[1]), int(array[2]) + 1) if array else [None]
only = os.environ.get("FAKE_SLURM_ONLY")
with open(os.environ["FAKE_SLURM_LOG"], "a") as log:
    log.write(" ".join(sys.argv[1:-1]) + " " + (f"array={{array[1]}}-{{array[2]}}" if array else "merge") + "\\n")
    for index in indices:
        if array and only is not None and str(index) not in only.split(","):
            continue
        task_env = dict(env, SLURM_JOB_ID="4242", SLURM_NODELIST="node1", SLURM_NODEID="0")
        if array:
            task_env["SLURM_ARRAY_TASK_ID"] = str(index)
        subprocess.run(["bash", script], env=task_env, stdout=log, stderr=log)
print("Submitted batch job 4242")
"""

FAKE_SRUN = """#!/bin/bash
# A stand-in for srun: drops its options and runs the command.
while [[ "$1" == -* ]]; do [[ "$1" == "-n" ]] && shift; shift; done
exec "$@"
"""


def install_fake_slurm(tmp_path: Path, monkeypatch) -> Path:
    """sbatch, srun, scontrol and squeue stand-ins on PATH; squeue lists job 4242 while FAKE_SQUEUE_RUNNING is set.

    Returns:
        The log of sbatch's calls (one line per submission: its options and ``array=<first>-<last>``).
    """
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    scripts = {
        "sbatch": FAKE_SBATCH.format(python=sys.executable),
        "srun": FAKE_SRUN,
        "scontrol": "#!/bin/bash\necho node1\n",  # scontrol show hostnames node1
        "squeue": '#!/bin/bash\n[[ -n "$FAKE_SQUEUE_RUNNING" ]] && echo "4242_1 cpu keyframes R 0:42"\nexit 0\n',
    }
    for name, text in scripts.items():
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    log = tmp_path / "sbatch.log"
    monkeypatch.setenv("PATH", f"{bin_dir}:{Path(sys.executable).parent}:{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_SLURM_LOG", str(log))
    return log
