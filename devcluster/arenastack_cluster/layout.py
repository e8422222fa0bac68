"""Where things are and the cluster's fixed address plan: shared by the control plane
and both local nodes, so neither imports the other."""

from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
TOOLCHAIN_SCRIPT = REPO_ROOT / "hack" / "toolchain.sh"
CHART_DIR = REPO_ROOT / "charts" / "arenastack"
SERVICE_CIDR = "10.96.0.0/16"
CLUSTER_DOMAIN = "cluster.local"
