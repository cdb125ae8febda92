"""An app's own restart scripts run with their output in a log, never a pipe (issue 16):
a script that backgrounds its server without redirecting it must not make run wait for
the server's end."""

from __future__ import annotations

import os
import signal
import socket
from pathlib import Path

import pytest

from migrate.discover.servers import Server
from migrate.run.execute import _states_now
from migrate.run.restart import Health, RestartError, restart


def server_with(tmp_path: Path, script: str) -> Server:
    bin_dir = tmp_path / "app" / "apache2" / "bin"
    bin_dir.mkdir(parents=True)
    (bin_dir / "restart").write_text(script)
    (bin_dir / "restart").chmod(0o755)
    return Server("app", bin_dir, None, None)


def test_a_server_backgrounded_without_redirection_does_not_hold_the_restart(
    tmp_path: Path,
) -> None:
    pid_file = tmp_path / "server.pid"
    server = server_with(
        tmp_path, f"#!/bin/sh\necho starting the server\nsleep 300 &\necho $! > {pid_file}\n"
    )
    log = tmp_path / "restart.log"
    log.touch()
    restart(server, log)
    pid = int(pid_file.read_text())
    try:
        assert Path(f"/proc/{pid}").exists(), "restart returned while its server still runs"
        assert log.read_text() == "starting the server\n"
    finally:
        os.kill(pid, signal.SIGTERM)


def test_a_failing_script_is_quoted_from_its_log(tmp_path: Path) -> None:
    server = server_with(tmp_path, "#!/bin/sh\necho 'httpd: bad config' >&2\nexit 3\n")
    log = tmp_path / "restart.log"
    log.write_text("an earlier restart's lines\n")
    with pytest.raises(RestartError) as failed:
        restart(server, log)
    assert str(failed.value) == (
        f"app: {server.bin_dir / 'restart'} exited 3: httpd: bad config (in {log})"
    )


def test_the_state_a_failed_run_ends_with_is_probed_not_assumed(tmp_path: Path) -> None:
    """An app that answered before the run and does not answer now (its restart on the old
    configuration failed): the final line says so, with what it was before."""
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]  # closed again below: nothing listens there
    server = Server("app", tmp_path, port, None)
    before = {"app": Health("app", port, 200)}
    [line] = _states_now([server], before, [], os.getuid(), tmp_path)
    assert line.startswith("app: no answer: ") and line.endswith(
        f" on port {port} (before the run: HTTP 200)"
    )
