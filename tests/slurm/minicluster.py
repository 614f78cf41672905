"""A throwaway one-node SLURM cluster on loopback, for the end-to-end SLURM test.

munged, slurmctld and slurmd run as root in the foreground of processes this module
starts, with every file (config, munge key, state, spool, logs) under one root directory.
Client commands find the cluster through SLURM_CONF, which `MiniCluster.env` carries.

Also usable by hand, to poke at the cluster the test uses:
    python3 tests/slurm/minicluster.py up /tmp/mc     # prints the SLURM_CONF to export
    python3 tests/slurm/minicluster.py down /tmp/mc
"""

import os
import shlex
import shutil
import signal
import socket
import stat
import string
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REQUIRED = ("munged", "mungekey", "slurmctld", "slurmd", "slurmstepd") + (
    "sbatch",
    "srun",
    "squeue",
    "sinfo",
    "scancel",
    "scontrol",
    "pgrep",
)
# Fake node size: the cluster schedules against these, not the hardware
# (SlurmdParameters=config_overrides), so the profile's requests always fit.
NODE_MEMORY_MB = 256000
# Two, so that two training jobs can run side by side on the one node.
FAKE_GPUS = 2


def unavailable_reason():
    """Why a cluster cannot be started here, or None when it can."""
    missing = [tool for tool in REQUIRED if not _which(tool)]
    if missing:
        return (
            f"SLURM/munge not installed (missing {', '.join(missing)}); "
            "run .ci/slurm-setup.sh to install slurm-wlm and munge"
        )
    if os.geteuid() != 0:
        return "the one-node test cluster runs slurmd as root; not root here"
    return None


def _which(tool):
    # The daemons live in /usr/sbin, which is not always on a user's PATH.
    return shutil.which(tool) or shutil.which(tool, path="/usr/sbin:/sbin")


def _free_ports(count):
    """`count` distinct free ports: all bound at once, so the kernel cannot hand out one twice."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


class ClusterError(RuntimeError):
    pass


class MiniCluster:
    def __init__(self, root):
        self.root = Path(root).resolve()
        self.conf = self.root / "etc" / "slurm.conf"
        self.munge_socket = self.root / "munge" / "munge.socket"
        self.bin = self.root / "bin"
        self.env = dict(
            os.environ,
            SLURM_CONF=str(self.conf),
            PATH=f"{self.bin}{os.pathsep}{os.environ.get('PATH', '')}",
        )
        self._procs = {}

    # -- start -----------------------------------------------------------------
    def start(self, timeout=90):
        """Write the configuration, start the daemons, wait for an idle node."""
        started = time.monotonic()
        self._write_config()
        try:
            self._start_munge()
            self._spawn("slurmctld", [_which("slurmctld"), "-D", "-f", str(self.conf)])
            self._spawn(
                "slurmd",
                [_which("slurmd"), "-D", "-N", "localhost", "-f", str(self.conf)],
            )
            self._wait_idle(started + timeout)
        except BaseException:
            self.stop()
            raise
        return time.monotonic() - started

    def _write_config(self):
        for sub in ("bin", "etc", "munge", "state", "spool", "run", "log"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        # munged refuses group/world-writable directories on the way to its files.
        for path in [self.root] + [p for p in self.root.iterdir() if p.is_dir()]:
            path.chmod(0o700)
        # ... and wants its socket directory searchable by everyone.
        for path in (self.root, self.munge_socket.parent):
            path.chmod(0o711)
        ctld_port, slurmd_port = _free_ports(2)
        values = {
            "root": str(self.root),
            "ctld_port": ctld_port,
            "slurmd_port": slurmd_port,
            "munge_socket": str(self.munge_socket),
            "cpus": max(2, os.cpu_count() or 2),
            "memory_mb": NODE_MEMORY_MB,
            "gpus": FAKE_GPUS,
        }
        values["gpu_files"] = self._fake_gpus()
        self._write_srun_shim()
        # slurmd reads gres.conf from beside slurm.conf.
        for name in ("slurm.conf", "gres.conf"):
            template = string.Template((HERE / f"{name}.in").read_text())
            (self.conf.parent / name).write_text(template.substitute(values))

    def _write_srun_shim(self):
        """Inside a job, the plugin's jobstep executor removes every SLURM_* variable
        but the job's identity before calling `srun`, SLURM_CONF included, so `srun`
        would look for /etc/slurm/slurm.conf. Real clusters keep their config there (or
        serve it configless); this cluster's lives in the temporary root, so jobs find
        an `srun` first on PATH that puts SLURM_CONF back."""
        shim = self.bin / "srun"
        shim.write_text(
            "#!/bin/sh\n"
            f"SLURM_CONF={shlex.quote(str(self.conf))} "
            f"exec {shlex.quote(shutil.which('srun'))} \"$@\"\n"
        )
        shim.chmod(0o755)

    def _fake_gpus(self):
        """Character devices for gres.conf's File= (twins of /dev/null); plain files
        where mknod is not allowed (slurmd then logs an error but still counts them).
        Returns the File= value."""
        for index in range(FAKE_GPUS):
            path = self.root / "etc" / f"nvidia{index}"
            if not path.exists():
                try:
                    os.mknod(path, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
                except PermissionError:
                    path.touch()
        return str(self.root / "etc" / f"nvidia[0-{FAKE_GPUS - 1}]")

    def _start_munge(self):
        key = self.root / "munge" / "munge.key"
        if not key.exists():
            subprocess.run(
                [_which("mungekey"), "--create", "--keyfile", str(key)],
                check=True,
                capture_output=True,
            )
        self._spawn(
            "munged",
            [
                _which("munged"),
                "--foreground",
                "--force",
                f"--socket={self.munge_socket}",
                f"--key-file={key}",
                f"--pid-file={self.root / 'run' / 'munged.pid'}",
                f"--log-file={self.root / 'log' / 'munged.log'}",
                f"--seed-file={self.root / 'munge' / 'munged.seed'}",
            ],
        )
        self._wait(
            lambda: self.munge_socket.exists(),
            time.monotonic() + 20,
            "munged did not create its socket",
        )

    def _spawn(self, name, argv):
        log = open(self.root / "log" / f"{name}.stdout", "ab")
        # A session of its own: the daemons outlive nothing of ours and get no
        # signals meant for pytest.
        proc = subprocess.Popen(
            argv,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        self._procs[name] = proc
        return proc

    def _wait_idle(self, deadline):
        def node_idle():
            for name, proc in self._procs.items():
                if proc.poll() is not None:
                    raise ClusterError(f"{name} exited with {proc.returncode}\n{self.log_tails()}")
            out = self.run(["sinfo", "--noheader", "--Node", "--format=%T"], check=False)
            state = out.stdout.strip() if out.returncode == 0 else ""
            if "drain" in state or "inval" in state:
                reason = self.run(["sinfo", "--noheader", "--Node", "--format=%E"])
                raise ClusterError(f"node {state}: {reason.stdout.strip()}\n{self.log_tails()}")
            # One line per partition the node is in.
            return set(state.split()) == {"idle"}

        self._wait(node_idle, deadline, "the node did not become idle")

    def _wait(self, condition, deadline, message):
        while not condition():
            if time.monotonic() > deadline:
                raise ClusterError(f"{message}\n{self.log_tails()}")
            time.sleep(0.5)

    # -- use -------------------------------------------------------------------
    def run(self, argv, check=True):
        return subprocess.run(argv, env=self.env, capture_output=True, text=True, check=check, timeout=60)

    def jobs(self):
        """Every job the controller still knows (finished ones for MinJobAge), as
        dicts: id, name, comment, state, partition, gres (e.g. "gres:gpu:1"), and what
        it asked for: time_limit (e.g. "4:00:00"), memory (e.g. "16000M"), cpus."""
        fields = ["JobID", "Name", "Comment", "State", "Partition", "tres-per-job", "TimeLimit", "MinMemory", "NumCPUs"]
        keys = ["id", "name", "comment", "state", "partition", "gres", "time_limit", "memory", "cpus"]
        out = self.run(
            [
                "squeue",
                "--states=all",
                "--noheader",
                "--Format=" + ",".join(f"{field}:|" for field in fields),
            ]
        )
        jobs = []
        for line in out.stdout.splitlines():
            values = [value.strip() for value in line.split("|")[: len(keys)]]
            jobs.append(dict(zip(keys, values)))
        return jobs

    def completion_log(self):
        """The controller's job completion log: one line per finished job."""
        path = self.root / "log" / "jobcomp.txt"
        return path.read_text() if path.exists() else ""

    def log_tails(self, lines=25):
        text = []
        for log in sorted((self.root / "log").glob("*")):
            tail = log.read_text(errors="replace").splitlines()[-lines:]
            text.append(f"--- {log.name}\n" + "\n".join(tail))
        return "\n".join(text)

    # -- stop ------------------------------------------------------------------
    def stop(self, timeout=30):
        """Cancel every job, stop the daemons, and kill whatever is left.

        Returns the processes still alive afterwards (should be none)."""
        if "slurmctld" in self._procs and self._procs["slurmctld"].poll() is None:
            self.run(["scancel", "--full", "--user=root"], check=False)
            self._wait_quiet(time.monotonic() + timeout / 2)
        for name in ("slurmd", "slurmctld", "munged"):
            proc = self._procs.get(name)
            if proc is not None and proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=timeout / 3)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        # slurmstepd and job processes are not our children: find them by the
        # SLURM_CONF they inherited from slurmd or from the submitting shell.
        for pid in self.leftover_pids():
            _kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while self.leftover_pids() and time.monotonic() < deadline:
            time.sleep(0.2)
        return self.leftover_pids()

    def _wait_quiet(self, deadline):
        while time.monotonic() < deadline:
            out = self.run(["squeue", "--noheader", "--format=%i"], check=False)
            if out.returncode != 0 or not out.stdout.strip():
                return
            time.sleep(0.5)

    def leftover_pids(self):
        """Processes that belong to this cluster: its daemons (by command line, as
        pgrep sees them) and anything carrying its SLURM_CONF in the environment."""
        pids = set()
        for pattern in (str(self.conf), str(self.munge_socket)):
            pgrep = subprocess.run(["pgrep", "-f", pattern], capture_output=True, text=True)
            pids.update(int(p) for p in pgrep.stdout.split())
        marker = f"SLURM_CONF={self.conf}".encode()
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                environ = (entry / "environ").read_bytes()
            except OSError:
                continue
            if marker in environ.split(b"\0"):
                pids.add(int(entry.name))
        return sorted(p for p in pids - _ancestors() if _alive(p))


def _ancestors():
    """This process and its parents: whoever started us may carry SLURM_CONF too."""
    pids, pid = set(), os.getpid()
    while pid > 1:
        pids.add(pid)
        try:
            pid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except OSError:
            break
    return pids


def _alive(pid):
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _kill(pid, sig):
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def _main(argv):
    if len(argv) != 3 or argv[1] not in ("up", "down"):
        sys.exit(f"usage: {argv[0]} up|down DIR")
    cluster = MiniCluster(argv[2])
    if argv[1] == "up":
        reason = unavailable_reason()
        if reason:
            sys.exit(reason)
        seconds = cluster.start()
        print(f"cluster up in {seconds:.1f}s; export SLURM_CONF={cluster.conf}")
        # The daemons run in their own sessions and survive this process.
        return
    # "down" from another process: the daemons are not our children here.
    for pid in cluster.leftover_pids():
        _kill(pid, signal.SIGTERM)
    time.sleep(3)
    for pid in cluster.leftover_pids():
        _kill(pid, signal.SIGKILL)
    left = cluster.leftover_pids()
    print("left behind:", left or "nothing")


if __name__ == "__main__":
    _main(sys.argv)
