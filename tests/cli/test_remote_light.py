"""Remote-mode CLI commands stay light: no torch, no SQLAlchemy, no pyarrow (issue 14).

Each command runs in a fresh interpreter against a URL nothing listens on, so it
gets as far as its first request; whatever it imported by then is checked.
"""

import json
import subprocess
import sys

from aimass.training.tasks import HEADLINE_METRICS, headline_metric, list_tasks

HEAVY = ("torch", "sqlalchemy", "pyarrow", "transformers", "fastapi")
COMMANDS = [
    ["datasets", "list"],
    ["models", "list"],
    ["models", "show", "m@1"],
    ["models", "export", "m@1", "out"],
    ["predict", "m@1", "some text"],
    ["train", "--dataset", "d", "--name", "m", "--base", "b"],
    ["train", "--dataset", "d", "--name", "m", "--base", "b", "--json"],
    ["jobs", "list"],
    ["jobs", "results", "j1", "--format", "csv"],
    ["keys", "list"],
    ["audit", "verify"],
    ["generate", "m@1", "hello"],
]
SCRIPT = """
import json, sys
from typer.testing import CliRunner
from aimass.cli import app
result = CliRunner().invoke(app, ["--url", "http://127.0.0.1:9", *json.loads(sys.argv[1])])
print(json.dumps({"exit": result.exit_code, "output": result.output[-400:],
                  "heavy": [m for m in json.loads(sys.argv[2]) if m in sys.modules]}))
"""


def test_remote_commands_import_no_heavy_library(tmp_path):
    for command in COMMANDS:
        done = subprocess.run(
            [sys.executable, "-c", SCRIPT, json.dumps(command), json.dumps(HEAVY)],
            capture_output=True,
            text=True,
            cwd=tmp_path,
            timeout=120,
            check=True,
        )
        found = json.loads(done.stdout.strip().splitlines()[-1])
        # The command really went remote: it failed on the unreachable server.
        assert "cannot reach the aimass server" in found["output"], (command, found)
        assert found["heavy"] == [], (command, found)


def test_headline_metrics_match_the_tasks():
    for task in list_tasks():
        assert headline_metric(task.name) == task.metric, task.name
    assert set(HEADLINE_METRICS) <= {t.name for t in list_tasks()}
