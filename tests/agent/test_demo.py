"""The demo that stays alive: its config, its job script and the command that queues runs."""

import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import call_command

from eltrunner.config import load_config
from eltrunner.protocol import Log, parse_line
from runs.models import Run, RunStatus

ROOT = Path(__file__).resolve().parents[2]
DEMO_CONFIG = ROOT / "demo" / "gateway.toml"


def test_the_demo_config_loads_and_names_the_seeded_pipelines():
    from runs.management.commands.seed_demo import PIPELINES

    config = load_config(DEMO_CONFIG)
    assert set(config.pipelines) == {name for name, *_ in PIPELINES}
    for pipeline in config.pipelines.values():
        argv = pipeline.argv()
        assert not pipeline.shell
        assert (pipeline.cwd / argv[1]).is_file(), argv


@pytest.mark.parametrize(("fail_rate", "code"), [("0", 0), ("1", 1)])
def test_the_demo_job_speaks_the_line_protocol(fail_rate, code):
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "demo" / "jobs" / "elt_job.py"),
            "--source=pg",
            "--destination=wh",
            "--resources=a,b",
            "--seconds=0.5",
            f"--fail-rate={fail_rate}",
            "--slow-node=b",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == code, result.stderr
    events = [parse_line(line, stream="stdout") for line in result.stdout.splitlines()]
    malformed = [e for e in events if isinstance(e, Log) and e.message.startswith("malformed")]
    assert not malformed
    assert any(not isinstance(e, Log) for e in events)


@pytest.mark.django_db(transaction=True)
def test_demo_schedule_queues_scheduled_runs_for_the_gateway(tmp_path):
    config = tmp_path / "gateway.toml"
    config.write_text('[pipelines.hello]\ncommand = "true"\n')
    call_command("demo_schedule", gateway="gw-demo", config=str(config), count=2, every=0.01)
    runs = list(Run.objects.select_related("pipeline", "gateway"))
    assert len(runs) == 2
    for run in runs:
        assert (run.pipeline.name, run.gateway.name) == ("hello", "gw-demo")
        assert run.status == RunStatus.QUEUED and run.trigger_type == "schedule"
