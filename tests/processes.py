"""Child processes the tests start (servers, workers)."""

import subprocess


def stop(process: subprocess.Popen, *, timeout: float) -> None:
    """Ask the process to stop (SIGTERM); kill it if it has not within `timeout` seconds."""
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
