"""``--lsl-local`` / ``EEGMUSIC_LSL_LOCAL=1``: LSL discovery stays on this machine.

Run in child processes: liblsl reads its configuration once per process, and this test process has
its own (tests/conftest.py).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

CHILD = """
import os, sys
from eegmusic.stream.cli import main
status = main(sys.argv[1:])
config = os.environ.get("LSLAPICFG")
print("STATUS", status)
print("CONFIG", config)
if config:
    print(open(config).read())
"""


def _child(args, cwd=ROOT, **env):
    base = {k: v for k, v in os.environ.items() if k not in ("LSLAPICFG", "EEGMUSIC_LSL_LOCAL")}
    result = subprocess.run([sys.executable, "-c", CHILD, *args], cwd=cwd, env={**base, **env},
                            capture_output=True, text=True, timeout=60)
    return result


@pytest.mark.lsl
@pytest.mark.parametrize(("args", "env"), [
    (["-v", "--lsl-local", "streams", "--timeout", "0.2"], {}),
    (["-v", "streams", "--timeout", "0.2"], {"EEGMUSIC_LSL_LOCAL": "1"}),
])
def test_lsl_local_writes_a_machine_scope_config_before_pylsl_loads(args, env):
    result = _child(args, **env)  # -v: liblsl logs the file it loaded
    assert "STATUS 0" in result.stdout or "STATUS 1" in result.stdout, result.stderr  # listed or none
    assert "ResolveScope = machine" in result.stdout and "ListenAddress = 127.0.0.1" in result.stdout
    assert "Configuration loaded from" in result.stderr and "eegmusic-lsl-local-" in result.stderr


@pytest.mark.lsl
@pytest.mark.parametrize("local", [[], ["--lsl-local"]])
def test_liblsl_logs_nothing_of_its_own_unless_verbose(tmp_path, local):
    """liblsl's INFO lines made every LSL command's one-line error two or three lines, even with -q."""
    args = [*local, "streams", "--timeout", "0.2"]
    quiet = _child(["-q", *args], HOME=str(tmp_path))  # HOME: no ~/lsl_api/lsl_api.cfg of the user's
    assert "level = -1" in quiet.stdout, quiet.stdout + quiet.stderr
    assert "INFO|" not in quiet.stderr and quiet.stderr.strip().count("\n") == 0, quiet.stderr
    verbose = _child(["-v", *args], HOME=str(tmp_path))
    assert "INFO|" in verbose.stderr and "level = 0" in verbose.stdout


@pytest.mark.lsl
def test_a_user_lsl_config_file_in_the_working_folder_is_not_hidden(tmp_path):
    (tmp_path / "lsl_api.cfg").write_text("[multicast]\nResolveScope = machine\n")
    result = _child(["streams", "--timeout", "0.2"], HOME=str(tmp_path), cwd=tmp_path)
    assert "CONFIG None" in result.stdout, result.stdout


@pytest.mark.lsl
def test_a_user_lsl_config_is_kept(tmp_path):
    mine = tmp_path / "mine.cfg"
    mine.write_text("[multicast]\nResolveScope = machine\n")
    result = _child(["--lsl-local", "streams", "--timeout", "0.2"], LSLAPICFG=str(mine))
    assert f"CONFIG {mine}" in result.stdout
    assert "does not keep" not in result.stderr        # it keeps discovery local itself: nothing to warn of


@pytest.mark.lsl
def test_lsl_local_under_a_user_config_that_answers_the_lan_says_so(tmp_path):
    """The user's LSLAPICFG wins, and --lsl-local (a privacy request) was then dropped with an INFO line
    that the default log level hides."""
    mine = tmp_path / "mine.cfg"
    mine.write_text("[lab]\nSessionID = lab-7\n[multicast]\n; ResolveScope = machine\nResolveScope = site\n")
    result = _child(["--lsl-local", "streams", "--timeout", "0.2"], LSLAPICFG=str(mine))
    assert f"CONFIG {mine}" in result.stdout                  # still theirs
    warning = [line for line in result.stderr.splitlines() if "does not keep LSL discovery" in line]
    assert len(warning) == 1 and str(mine) in warning[0], result.stderr
    assert "add 'ResolveScope = machine' under [multicast]" in warning[0]
    assert mine.read_text().endswith("ResolveScope = site\n")  # never edited


def test_a_liblsl_config_keeps_discovery_local_only_with_machine_scope(tmp_path):
    from eegmusic.stream.lsl_local import LOCAL_CONFIG, keeps_discovery_local

    path = tmp_path / "a.cfg"
    for text, local in ((LOCAL_CONFIG, True), ("[multicast]\nresolvescope=MACHINE ; here\n", True),
                        ("[multicast]\n;ResolveScope = machine\n", False), ("[lab]\nSessionID = x\n", False),
                        ("[lab]\nResolveScope = machine\n", False)):   # liblsl reads it in [multicast] only
        path.write_text(text)
        assert keeps_discovery_local(path) is local, text
    assert keeps_discovery_local(tmp_path / "missing.cfg") is False


def test_a_mistyped_lsl_local_variable_is_said(caplog, monkeypatch):
    from eegmusic.stream import lsl_local

    monkeypatch.setenv(lsl_local.ENV_FLAG, "banana")
    with caplog.at_level("WARNING", logger="eegmusic.stream.lsl_local"):
        assert not lsl_local.requested(False)
    assert "EEGMUSIC_LSL_LOCAL=banana is neither yes nor no" in caplog.text


@pytest.mark.parametrize("value", ["0", "", "no"])
def test_lsl_local_is_off_unless_asked(value):
    from eegmusic.stream import lsl_local

    os.environ[lsl_local.ENV_FLAG] = value
    try:
        assert not lsl_local.requested(False) and lsl_local.requested(True)
    finally:
        del os.environ[lsl_local.ENV_FLAG]


@pytest.mark.parametrize("local", [False, True], ids=["default", "lsl-local"])
def test_a_folder_in_the_way_of_the_liblsl_configuration_is_one_line_or_no_configuration(tmp_path, local,
                                                                                        sim_dir):
    """Any user of the machine may make a folder of the name eegmusic gives its liblsl configuration in the
    shared /tmp: every command of yours then ended in a traceback before it started. The default
    configuration (liblsl's log level) is left out; --lsl-local, a privacy request, is refused."""
    temp = tmp_path / "tmp"
    temp.mkdir()
    (temp / f"eegmusic-lsl-{'local' if local else 'default'}--1-{os.getuid()}.cfg").mkdir()
    result = _child([*(["--lsl-local"] if local else []), "info", str(sim_dir)], TMPDIR=str(temp))
    if local:
        assert "STATUS 2" in result.stdout and "CONFIG None" in result.stdout, result.stdout
        refused = "eegmusic info: error: --lsl-local cannot write liblsl's configuration"
        assert result.stderr.count("\n") == 1 and refused in result.stderr, result.stderr
        assert "set TMPDIR to a folder of your own" in result.stderr
    else:
        assert "STATUS 0" in result.stdout and "CONFIG None" in result.stdout, result.stdout + result.stderr
        assert "Traceback" not in result.stderr and "problems: none" in result.stdout


@pytest.mark.lsl
@pytest.mark.parametrize("name", ["missing.cfg", "missing\n.cfg"], ids=["name", "name with a line break"])
@pytest.mark.parametrize("local", [[], ["--lsl-local"]], ids=["default", "lsl-local"])
def test_an_lsl_config_variable_naming_no_file_is_said_and_replaced(tmp_path, local, name):
    """liblsl ignores an LSLAPICFG that names no file with two ERR lines and runs on its defaults; with
    --lsl-local eegmusic then told the user to add 'ResolveScope = machine' to that missing file, and
    discovery went across the LAN. The warning quotes the name: a line break in it made two lines."""
    missing = tmp_path / name
    result = _child([*local, "streams", "--timeout", "0.2"], LSLAPICFG=str(missing), HOME=str(tmp_path))
    assert f"CONFIG {missing}" not in result.stdout and "CONFIG None" not in result.stdout, result.stdout
    assert ("ResolveScope = machine" in result.stdout) == bool(local), result.stdout
    warning = [line for line in result.stderr.splitlines() if "is no file" in line]
    assert len(warning) == 1 and f"LSLAPICFG names {str(missing)!r}, which is no file" in warning[0], (
        result.stderr)
    assert "ERR|" not in result.stderr and "add 'ResolveScope" not in result.stderr, result.stderr
