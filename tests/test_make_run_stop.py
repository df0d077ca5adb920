"""`make run` stops everything with one Ctrl-C: its recipe's trap kills the process group once.

The trap used to be `trap 'kill 0' EXIT INT TERM`: the TERM it sends reached the recipe's
shell too, ran the trap again, and so on until bash overflowed its stack. Ctrl-C then ended
with "make: *** [Makefile:34: run] Segmentation fault". This runs the Makefile's own trap
line in a shell of its own process group, with background children as `make run` has: one
SIGINT (Ctrl-C) stops them all, the shell waits for them, and nothing outside the group (make,
here pytest) is signalled."""

import os
import re
import signal
import subprocess
import time
from pathlib import Path

MAKEFILE = Path(__file__).resolve().parent.parent / "Makefile"


def _trap() -> str:
    match = re.search(r"trap '([^']*)' EXIT INT TERM", MAKEFILE.read_text())
    assert match, "the run recipe has no trap on EXIT INT TERM"
    return match.group(0).replace("$$", "$")  # as make hands it to the shell


def _alive(pgid: int) -> list[int]:
    alive = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(stat[2]) == pgid and stat[0] != "Z":
                alive.append(int(entry.name))
    return alive


def test_one_interrupt_stops_the_recipe_and_its_children_without_a_crash():
    script = f"{_trap()}; sleep 60 & sleep 60 & sleep 60"
    shell = subprocess.Popen(
        ["bash", "-c", script],
        start_new_session=True,  # its own process group, as a terminal's foreground job
        stderr=subprocess.PIPE,
    )
    time.sleep(0.5)
    assert len(_alive(shell.pid)) == 4  # the shell and its three sleeps
    os.killpg(shell.pid, signal.SIGINT)  # what Ctrl-C sends
    try:
        shell.wait(timeout=10)
    finally:
        if shell.poll() is None:
            os.killpg(shell.pid, signal.SIGKILL)
    assert shell.returncode != -signal.SIGSEGV, "the trap ran itself until bash crashed"
    assert shell.returncode in (-signal.SIGINT, -signal.SIGTERM, 130, 143)
    deadline = time.monotonic() + 5
    while _alive(shell.pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _alive(shell.pid) == []
