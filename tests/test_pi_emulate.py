"""scripts/pi-emulate: the emulated Raspberry Pi (arm64) check, and its "cannot set up" path.

The full check (``-m pi``) runs only where the cached arm64 root exists (it is built once, as
root, by ``sudo -E scripts/pi-emulate``; about 10 minutes with network). Exit 77 from the script
means emulation cannot be set up on this machine: the test skips with the script's own message.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "pi-emulate"
EXIT_SKIP = 77
DEFAULT_ROOT = Path(os.environ.get("KWS_PI_ROOT",
                                   Path.home() / ".cache" / "kws-edge" / "pi-arm64-bookworm"))


def _run(env_extra: dict[str, str], *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    env = {**os.environ, "KWS_PI_NO_APT": "1", **env_extra}
    return subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True, env=env,
                          timeout=timeout, cwd=REPO)


def _pi_compare():
    spec = importlib.util.spec_from_file_location("pi_compare", REPO / "scripts" / "pi_compare.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ---------------------------------------------------------------------------------------------
# fast: the setup checks say which step failed, and skip with 77 (never a silent pass)
# ---------------------------------------------------------------------------------------------
def test_no_root_skips_naming_the_privileges_step(tmp_path):
    proc = _run({"KWS_PI_FAKE_NO_ROOT": "1", "KWS_PI_ROOT": str(tmp_path / "root")}, "--check")
    assert proc.returncode == EXIT_SKIP, proc.stdout + proc.stderr
    assert "SKIPPED at step 'privileges'" in proc.stderr
    assert "needs root" in proc.stderr
    assert not (tmp_path / "root").exists()  # nothing was built


def test_unwritable_root_dir_skips_naming_the_cache_step(tmp_path):
    # /proc refuses new directories even for root; without root the privileges step comes first.
    proc = _run({"KWS_PI_ROOT": "/proc/kws-pi-emulate-test/root"}, "--check")
    assert proc.returncode == EXIT_SKIP, proc.stdout + proc.stderr
    expected = "'cache dir'" if os.geteuid() == 0 else "'privileges'"
    assert f"SKIPPED at step {expected}" in proc.stderr
    if os.geteuid() == 0:
        assert "/proc/kws-pi-emulate-test" in proc.stderr


def test_root_inside_the_repository_is_refused(tmp_path):
    proc = _run({"KWS_PI_ROOT": str(REPO / "cache" / "pi-root")}, "--check")
    assert proc.returncode == EXIT_SKIP, proc.stdout + proc.stderr
    if os.geteuid() == 0:
        assert "SKIPPED at step 'cache dir'" in proc.stderr
        assert "inside the repository" in proc.stderr
    assert not (REPO / "cache" / "pi-root").exists()


def test_missing_debootstrap_skips_naming_the_host_tools_step(tmp_path):
    # debootstrap lives in /usr/sbin: a PATH without sbin hides it; KWS_PI_NO_APT=1 (set by _run)
    # makes the script say what is missing instead of installing it.
    proc = _run({"PATH": "/usr/bin:/bin", "KWS_PI_ROOT": str(tmp_path / "root")}, "--check")
    assert proc.returncode == EXIT_SKIP, proc.stdout + proc.stderr
    if os.geteuid() == 0:
        assert "SKIPPED at step 'host tools': debootstrap is not installed" in proc.stderr
    else:
        assert "SKIPPED at step 'privileges'" in proc.stderr


def test_bad_argument_is_a_usage_error():
    proc = _run({}, "--frobnicate")
    assert proc.returncode == 2
    assert "unknown argument '--frobnicate'" in proc.stderr


# ---------------------------------------------------------------------------------------------
# fast: the comparison names the first differing field and ignores only timings
# ---------------------------------------------------------------------------------------------
def test_compare_reports_first_difference(tmp_path):
    pc = _pi_compare()
    x86 = {"detections": [{"time_s": 1.5, "label": "yes", "score": 0.91}], "accuracy": 0.75,
           "mean_latency_ms": 3.1}
    same = json.loads(json.dumps(x86))
    same["mean_latency_ms"] = 412.0  # emulation is slow: timings are not compared
    assert pc.differences(x86, same) == []
    other = json.loads(json.dumps(x86))
    other["detections"][0]["score"] = 0.90
    diffs = pc.differences(x86, other)
    assert diffs and diffs[0].startswith("detections[0].score: x86 0.91 != arm64 0.9")
    shorter = {**x86, "detections": []}
    assert "x86 has 1 items, arm64 has 0" in pc.differences(x86, shorter)[0]

    a, b = tmp_path / "a.json", tmp_path / "b.json"
    a.write_text(json.dumps(x86))
    b.write_text(json.dumps(other))
    proc = subprocess.run([sys.executable, str(REPO / "scripts" / "pi_compare.py"), "compare", "listen",
                           str(a), str(b)], capture_output=True, text=True)
    assert proc.returncode == 1
    assert "listen: 1 difference(s); first: detections[0].score" in proc.stdout


def test_compare_reads_json_lines(tmp_path):
    pc = _pi_compare()
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    a.write_text('{"time_s": 1.0, "label": "yes"}\n{"time_s": 2.5, "label": "no"}\n')
    b.write_text('{"time_s": 1.0, "label": "yes"}\n{"time_s": 2.5, "label": "go"}\n')
    assert pc.differences(pc._load_json_or_lines(a), pc._load_json_or_lines(a)) == []
    assert pc.differences(pc._load_json_or_lines(a), pc._load_json_or_lines(b))[0] == \
        '[1].label: x86 "no" != arm64 "go"'


# ---------------------------------------------------------------------------------------------
# the full emulated check
# ---------------------------------------------------------------------------------------------
@pytest.mark.pi
def test_pi_emulate_outputs_identical():
    if not (DEFAULT_ROOT / ".kws-root-complete").is_file():
        pytest.skip(f"no cached arm64 root at {DEFAULT_ROOT}; build it once with: sudo -E scripts/pi-emulate")
    proc = _run({"KWS_HOST_PYTHON": sys.executable, "KWS_PI_ROOT": str(DEFAULT_ROOT)}, timeout=1800)
    if proc.returncode == EXIT_SKIP:
        pytest.skip(proc.stderr.strip().splitlines()[-1])
    assert proc.returncode == 0, (proc.stdout[-3000:] + proc.stderr[-3000:])
    assert "OK: arm64 (emulated) and x86 outputs identical" in proc.stdout


def _raw_dir(path: Path, *, outputs, given=None, features=None, inputs=None, xnnpack=True) -> Path:
    import numpy as np

    path.mkdir()
    rng = np.random.default_rng(0)
    feats = features if features is not None else rng.normal(size=(2, 4, 3)).astype(np.float32)
    np.save(path / "features.npy", feats)
    np.save(path / "inputs.npy", inputs if inputs is not None else np.zeros((2, 4, 3), np.int8))
    np.save(path / "outputs.npy", np.asarray(outputs, np.int8))
    np.save(path / "outputs_from_given_inputs.npy", np.asarray(given if given is not None else outputs, np.int8))
    (path / "info.json").write_text(json.dumps({"machine": "m", "backend": "ai-edge-litert",
                                                "xnnpack": xnnpack, "n_clips": 2}))
    return path


def test_compare_raw_is_exact_for_the_interpreter(tmp_path):
    import numpy as np

    pc = _pi_compare()
    feats = np.random.default_rng(0).normal(size=(2, 4, 3)).astype(np.float32)
    x86 = _raw_dir(tmp_path / "x86", outputs=[[5, -3, 9], [1, 2, 3]], features=feats)
    same = _raw_dir(tmp_path / "same", outputs=[[5, -3, 9], [1, 2, 3]],
                    features=np.nextafter(feats, np.float32(10)))  # 1-ulp front-end differences
    ok, lines = pc.compare_raw(x86, same)
    assert ok, lines
    assert any(line.startswith("front-end: 24 of 24 float32 features differ") for line in lines)

    off_by_one = _raw_dir(tmp_path / "off", outputs=[[5, -3, 9], [1, 2, 3]],
                          given=[[5, -3, 9], [1, 3, 3]], features=feats)
    ok, lines = pc.compare_raw(x86, off_by_one)
    assert not ok
    assert any("FAIL: interpreter" in line and "clip 1, class 1: x86 2 != arm64 3" in line for line in lines)

    no_xnnpack = _raw_dir(tmp_path / "nox", outputs=[[5, -3, 9], [1, 2, 3]], features=feats, xnnpack=False)
    ok, lines = pc.compare_raw(x86, no_xnnpack)
    assert not ok and any("XNNPACK is applied on one side only" in line for line in lines)


# ---------------------------------------------------------------------------------------------
# the systemd unit of docs/raspberry-pi.md
# ---------------------------------------------------------------------------------------------
def test_systemd_unit_restarts_on_failure_and_uses_real_flags():
    import re
    import shlex

    unit = (REPO / "docs" / "kws-listen.service").read_text()
    settings = dict(re.findall(r"^(\w+)=(.*)$", unit, flags=re.MULTILINE))
    assert settings["Restart"] == "on-failure"
    assert int(settings["RestartSec"]) > 0
    assert settings["KillSignal"] == "SIGINT" and "130" in settings["SuccessExitStatus"].split()
    assert settings["WantedBy"] == "multi-user.target"
    argv = shlex.split(settings["ExecStart"])
    assert argv[0].endswith("/bin/kws-listen")
    help_text = subprocess.run([sys.executable, "-c", "import sys; from kws.runtime.listen import main; "
                                "sys.exit(main(['--help']))"], capture_output=True, text=True).stdout
    for flag in (a for a in argv[1:] if a.startswith("--")):
        assert flag in help_text, f"{flag} in the unit's ExecStart is not a kws-listen flag"
    assert "--json" in argv
