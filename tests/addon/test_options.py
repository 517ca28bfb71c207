"""The container's options.json: good values configure the service, bad ones stop it clearly."""

from __future__ import annotations

from pathlib import Path
import subprocess
import sys

import pytest

ROOT = Path(__file__).parents[2]


def _start(options: Path, data_dir: Path) -> subprocess.CompletedProcess[str]:
    # Exits at once on bad options; port 9 on loopback is never reached.
    command = [sys.executable, "-m", "homeiq_addon", "--options", str(options)]
    command += ["--data-dir", str(data_dir), "--host", "127.0.0.1", "--port", "9"]
    return subprocess.run(
        command, cwd=ROOT / "addon", capture_output=True, text=True, timeout=60, check=False
    )


@pytest.mark.parametrize(
    ("content", "message"),
    [
        pytest.param('{"raw_retention_days": 0}', "raw_retention_days: value must be at least 1",
                     id="below_range"),
        pytest.param('{"max_body_mb": "big"}', "max_body_mb: expected int", id="wrong_type"),
        pytest.param('{"retention_schedule": "25:00"}', "retention_schedule: expected HH:MM",
                     id="bad_time"),
        pytest.param('{"log_level": "loud"}', "log_level: value must be one of", id="bad_choice"),
        pytest.param("[1, 2]", "expected a dictionary", id="not_an_object"),
        pytest.param("{not json", "options.json: unexpected character", id="malformed"),
        pytest.param('{"mirror_targets": [{"name": "influx", "url": "ftp://x", "bucket": "b"}]}',
                     "mirror_targets: target 'influx': url: expected an http(s) URL",
                     id="mirror_target_url"),
        pytest.param('{"mirror_targets": [{"name": "vm", "url": "http://vm:8428"}]}',
                     "mirror_targets: target 'vm': bucket: required key not provided",
                     id="mirror_target_without_bucket"),
    ],
)  # fmt: skip
def test_bad_options_stop_the_service_with_a_clear_message(
    tmp_path: Path, content: str, message: str
) -> None:
    options = tmp_path / "options.json"
    options.write_text(content)
    data_dir = tmp_path / "data"

    result = _start(options, data_dir)

    assert result.returncode == 2
    assert message in result.stderr
    assert not data_dir.exists(), "nothing is created before the options are checked"


def test_missing_options_file_is_named(tmp_path: Path) -> None:
    result = _start(tmp_path / "absent.json", tmp_path / "data")
    assert result.returncode == 2
    assert "absent.json" in result.stderr
