"""Starts one container: `python -m arenastack_cluster.localnode.shim SPEC.json`.

The shim joins the pod's network namespace, enters new mount, UTS and PID
namespaces, bind-mounts the pod's volumes (and its /etc/hosts and
/etc/resolv.conf) at their paths, and then runs the command as PID 2 under a
small init (PID 1) that forwards signals and reaps orphans. When the command
exits, the init exits and the kernel kills everything else left in the PID
namespace, so a container never leaks processes; if the shim itself is killed,
PR_SET_PDEATHSIG takes the init (and so the tree) with it. The shim records
the exit status in a file the agent reads, so the agent may restart without
losing track of its containers.
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import socket
import sys
import time
from pathlib import Path

CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_REMOUNT = 32
MS_BIND = 4096
MS_REC = 16384
MS_PRIVATE = 1 << 18
PR_SET_PDEATHSIG = 1
FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1,
             signal.SIGUSR2)  # fmt: skip
EXIT_START_ERROR = 128

_libc = ctypes.CDLL(None, use_errno=True)


def _check(result: int, what: str) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _mount(src: str | None, dst: str, fstype: str | None, flags: int) -> None:
    _check(
        _libc.mount(
            src.encode() if src else None, dst.encode(), fstype.encode() if fstype else None,
            ctypes.c_ulong(flags), None,
        ),
        f"mount {src} on {dst}",
    )  # fmt: skip


def _make_mountpoint(target: Path, is_dir: bool, created: list[str]) -> None:
    """Create what the mount needs, noting each new path: without a root filesystem of
    its own a container's mount points are made in the host's, and the agent removes
    them again once no pod uses them."""
    missing = [p for p in (target, *target.parents) if not p.exists() and not p.is_symlink()]
    for path in reversed(missing):
        if path == target and not is_dir:
            path.touch()
        else:
            path.mkdir()
        created.append(str(path))


def _bind(src_fd: int, is_dir: bool, dst: str, readonly: bool, created: list[str]) -> None:
    _make_mountpoint(Path(dst), is_dir, created)
    _mount(f"/proc/self/fd/{src_fd}", dst, None, MS_BIND | MS_REC)
    if readonly:
        _mount(None, dst, None, MS_BIND | MS_REMOUNT | MS_RDONLY)


def _enter(spec: dict) -> None:
    if spec.get("netns"):
        fd = os.open(spec["netns"], os.O_RDONLY)
        _check(_libc.setns(fd, CLONE_NEWNET), "setns")
        os.close(fd)
    _check(_libc.unshare(CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWPID), "unshare")
    _mount(None, "/", None, MS_REC | MS_PRIVATE)
    # Every source is opened (in the new mount namespace) before the first mount: a
    # volume mounted at, say, /data would otherwise hide sources that live under /data.
    sources = []
    for m in spec.get("mounts", []):
        fd = os.open(m["src"], os.O_PATH | os.O_CLOEXEC)
        sources.append((fd, Path(m["src"]).is_dir(), m))
    socket.sethostname(spec.get("hostname") or "pod")
    created: list[str] = []
    try:
        for fd, is_dir, m in sources:
            _bind(fd, is_dir, m["dst"], m.get("ro", False), created)
            os.close(fd)
    finally:
        if created:
            Path(spec["status_file"] + ".created").write_text(json.dumps(created))


def _start_error(spec: dict, message: str) -> None:
    Path(spec["status_file"] + ".starterr").write_text(message)
    print(f"localnode: {message}", file=sys.stderr, flush=True)


def _exit_code(status: int) -> tuple[int, int | None]:
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        return 128 + sig, sig
    return os.waitstatus_to_exitcode(status), None


def _init(spec: dict) -> None:
    """PID 1 of the container: start the command, forward signals, reap, exit with it."""
    _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    _mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    child = os.fork()
    if child == 0:
        for sig in FORWARDED:
            signal.signal(sig, signal.SIG_DFL)
        os.setsid()
        try:
            os.chdir(spec["cwd"])
            os.execvpe(spec["argv"][0], spec["argv"], spec["env"])
        except OSError as err:
            _start_error(spec, f"failed to start {spec['argv'][0]!r}: {err.strerror}")
            os._exit(EXIT_START_ERROR)
    for sig in FORWARDED:
        signal.signal(sig, lambda s, _f: os.kill(child, s))
    while True:
        pid, status = os.wait()
        if pid == child:
            code, _ = _exit_code(status)
            os._exit(code)


def main() -> None:
    spec = json.loads(Path(sys.argv[1]).read_text())
    try:
        _enter(spec)
    except OSError as err:
        _start_error(spec, f"setting up the container failed: {err}")
        _record(spec, EXIT_START_ERROR, None)
        sys.exit(EXIT_START_ERROR)
    init = os.fork()
    if init == 0:
        try:
            _init(spec)
        finally:
            os._exit(EXIT_START_ERROR)
    for sig in FORWARDED:
        signal.signal(sig, lambda s, _f: os.kill(init, s))
    _, status = os.waitpid(init, 0)
    code, sig = _exit_code(status)
    _record(spec, code, sig)
    sys.exit(code if code < 256 else 255)


def _record(spec: dict, code: int, sig: int | None) -> None:
    record = {"exitCode": code, "signal": sig, "finishedAt": time.time()}
    tmp = Path(spec["status_file"] + ".tmp")
    tmp.write_text(json.dumps(record))
    os.replace(tmp, spec["status_file"])


if __name__ == "__main__":
    main()
