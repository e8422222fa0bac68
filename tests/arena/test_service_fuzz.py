"""schemathesis against the service's own OpenAPI schema: no input produces a 5xx."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from arena_processes import ADMIN_TOKEN, start_service, stop
from arena_support import models_file

SCHEMATHESIS = Path(__file__).resolve().parents[2] / ".venv" / "bin" / "schemathesis"


def test_no_server_errors_under_fuzzing(tmp_path, model_endpoint):
    service = start_service(
        f"sqlite:///{tmp_path / 'fuzz.db'}",
        models_file=models_file(tmp_path, model_endpoint, ["alpha", "beta"]),
    )
    try:
        run = subprocess.run(
            [
                str(SCHEMATHESIS),
                "run",
                f"{service.url}/openapi.json",
                "--checks",
                "not_a_server_error",
                "--max-examples",
                "15",
                "--seed",
                "7",
                "--request-timeout",
                "30",
                "--header",
                f"Authorization: Bearer {ADMIN_TOKEN}",
            ],
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
        found = re.search(r"(\d+) generated, (\d+) passed", run.stdout)
        assert found and int(found.group(1)) > 100 and found.group(1) == found.group(2), run.stdout[
            -2000:
        ]
    finally:
        stop(service.proc)
