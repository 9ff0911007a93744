#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Run a command next to a private systemd-journald (for test_journal.py).

    unshare --mount --propagation private --pid --fork --mount-proc --kill-child \
        journal-ns.py OUTDIR -- COMMAND [ARG...]

It runs as PID 1 of a new PID namespace inside a private mount namespace: it mounts a tmpfs on /run and on
/var/log, so the host's journal sockets and journal files are out of sight and untouched, starts
systemd-journald there with volatile storage and its own messages on its stderr (not the host's
/dev/kmsg), then COMMAND. When this process ends, the kernel kills whatever is left in the namespace.

Lines on stdout (to the test):  READY <pid of COMMAND>  |  SKIP <reason>  |  EXITED <status> (COMMAND ended
by itself)  |  JOURNALD-STOPPED  |  EXIT <status of COMMAND>
Lines on stdin (from the test): stop-journald (sync and stop journald; COMMAND keeps running)  |  stop
(SIGTERM to COMMAND, then journald; end of input does the same)

OUTDIR receives command.stdout, command.stderr, journald.log, and journal/ (a copy of /run/log/journal,
made after journald stopped): read it with `journalctl -D OUTDIR/journal`."""

import os
import select
import shutil
import subprocess
import sys
import time
from pathlib import Path

JOURNALD_CANDIDATES = ("/lib/systemd/systemd-journald", "/usr/lib/systemd/systemd-journald")
SOCKET = Path("/run/systemd/journal/socket")
JOURNAL_DIR = Path("/run/log/journal")
CONFIG = """[Journal]
Storage=volatile
ReadKMsg=no
Audit=no
ForwardToSyslog=no
ForwardToKMsg=no
ForwardToConsole=no
ForwardToWall=no
"""
# What systemd passes to services; none of it may leak from the test's own environment.
SERVICE_VARS = ("NOTIFY_SOCKET", "LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES", "WATCHDOG_PID",
                "WATCHDOG_USEC", "JOURNAL_STREAM", "INVOCATION_ID", "CREDENTIALS_DIRECTORY")
START_TIMEOUT = 10
STOP_TIMEOUT = 30


def say(line):
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def clean_env(**extra):
    env = {k: v for k, v in os.environ.items() if k not in SERVICE_VARS}
    env.update(extra)
    return env


def stop(proc, timeout=STOP_TIMEOUT):
    """SIGTERM, then SIGKILL after `timeout`; returns the exit status."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


def mount_tmpfs(where):
    subprocess.run(["mount", "-t", "tmpfs", "-o", "mode=0755,size=64m", "upkeep-test", where], check=True,
                   capture_output=True, text=True)


def start_journald(out):
    """journald on the fresh /run; returns (Popen, None), or (None, why it did not come up)."""
    binary = next((b for b in JOURNALD_CANDIDATES if os.access(b, os.X_OK)), None)
    if binary is None:
        return None, f"systemd-journald is not installed (looked for {', '.join(JOURNALD_CANDIDATES)})"
    conf = Path("/run/systemd/journald.conf.d")
    conf.mkdir(parents=True)
    (conf / "zz-upkeep-test.conf").write_text(CONFIG)
    JOURNAL_DIR.parent.mkdir(parents=True, exist_ok=True)
    with open(out / "journald.log", "wb") as log:
        proc = subprocess.Popen([binary], stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                env=clean_env(SYSTEMD_LOG_TARGET="console"))
    deadline = time.monotonic() + START_TIMEOUT
    while not SOCKET.is_socket():
        if proc.poll() is not None or time.monotonic() > deadline:
            status = stop(proc, 5)
            text = (out / "journald.log").read_text(errors="replace").strip()
            return None, (f"{binary} did not create {SOCKET} within {START_TIMEOUT} s (exit status "
                          f"{status}); its output: {text or '(none)'}")
        time.sleep(0.02)
    return proc, None


def stop_journald(journald):
    """Have journald store everything queued on its sockets, then stop it (its files end up offline)."""
    if journald.poll() is None:
        subprocess.run(["journalctl", "--sync"], stdin=subprocess.DEVNULL, capture_output=True, timeout=10)
    stop(journald, 10)


def commands(command):
    """The test's lines on stdin, one at a time; "stop" at end of input. Says EXITED once if COMMAND ends
    while waiting."""
    buf = b""
    exited = False
    while True:
        while b"\n" in buf:
            line, _, buf = buf.partition(b"\n")
            yield line.decode().strip()
        if not exited and command.poll() is not None:
            exited = True
            say(f"EXITED {command.returncode}")
        ready, _, _ = select.select([0], [], [], 0.1)
        if ready:
            data = os.read(0, 4096)
            if not data:
                yield "stop"
                return
            buf += data


def main():
    if len(sys.argv) < 4 or sys.argv[2] != "--":
        print("usage: journal-ns.py OUTDIR -- COMMAND [ARG...]", file=sys.stderr)
        return 2
    out = Path(sys.argv[1])
    argv = sys.argv[3:]
    if os.getpid() != 1:
        print("journal-ns.py: run me with unshare --pid --fork --mount-proc (I am not PID 1)",
              file=sys.stderr)
        return 2
    try:
        for where in ("/run", "/var/log"):
            mount_tmpfs(where)
    except subprocess.CalledProcessError as e:
        say(f"SKIP cannot mount a tmpfs in the private mount namespace: {e.stderr.strip()}")
        return 77
    journald, why = start_journald(out)
    if journald is None:
        say(f"SKIP {why}")
        return 77
    command = None
    try:
        with open(out / "command.stdout", "wb") as so, open(out / "command.stderr", "wb") as se:
            command = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=so, stderr=se, env=clean_env())
        say(f"READY {command.pid}")
        for line in commands(command):
            if line == "stop-journald":
                stop_journald(journald)
                say("JOURNALD-STOPPED")
            elif line == "stop":
                break
        status = stop(command)
        stop_journald(journald)
        if JOURNAL_DIR.is_dir():
            shutil.copytree(JOURNAL_DIR, out / "journal")
        say(f"EXIT {status}")
        return 0
    finally:
        if command is not None:
            stop(command, 5)
        stop(journald, 5)


if __name__ == "__main__":
    sys.exit(main())
