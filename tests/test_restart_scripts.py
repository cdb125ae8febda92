"""An app's own restart scripts run with their output in a log, never a pipe (issue 16):
a script that backgrounds its server without redirecting it must not make run wait for
the server's end."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from migrate.discover.servers import Server
from migrate.run.restart import RestartError, restart


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
