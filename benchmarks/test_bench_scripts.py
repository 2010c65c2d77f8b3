"""Every stand-alone benchmark script answers --help (exit 0, a usage line) without running anything.
(plain_wgan_gp.py, gpu_suite_report.py, bench_utils.py and critics.py are modules the others import.)"""
import os
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
SCRIPTS = ["conv_ceiling.py", "inception_fid_agreement.py", "time_to_quality.py", "gpu_suite.py"]


@pytest.mark.parametrize("script", SCRIPTS)
def test_script_answers_help(script):
    r = subprocess.run([sys.executable, os.path.join(HERE, script), "--help"], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.startswith("usage:"), r.stdout[:500]
