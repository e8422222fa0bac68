"""`arenastack` command line: the local development cluster.

arenastack cluster up [--profile kwok|local] [--cpu-nodes 4] [--gpu-nodes 4]
arenastack cluster down | status | kubeconfig [--profile kwok|local]

Without --profile, down/status/kubeconfig act on whichever profiles have a
running state folder (down stops them all). ARENASTACK_POD_CIDR chooses the
local node's pod range (default 10.244.0.0/24). The local node is the upstream kubelet
with containerd and runc, running the images `make images` builds.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from arenastack_cluster import demo
from arenastack_cluster.cluster import LocalCluster
from arenastack_cluster.processes import ClusterError

PROFILES = ("kwok", "local")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="arenastack", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="group", required=True)
    cluster = sub.add_parser("cluster", help="the local control plane")
    actions = cluster.add_subparsers(dest="action", required=True)
    up = actions.add_parser("up", help="build what is missing and start the control plane")
    up.add_argument(
        "--profile",
        choices=PROFILES,
        default="kwok",
        help="kwok: simulated nodes (integration tests, scale); local: a local node that "
        "runs pods for real (end-to-end tests, the demo)",
    )
    up.add_argument("--cpu-nodes", type=int, default=4)
    up.add_argument("--gpu-nodes", type=int, default=4)
    for name, text in (
        ("down", "stop everything `up` started"),
        ("status", "show each component"),
        ("kubeconfig", "print the admin kubeconfig path"),
    ):
        p = actions.add_parser(name, help=text)
        p.add_argument("--profile", choices=PROFILES, default=None)
    demo_cmd = sub.add_parser("demo", help="the local stack with the chart and operator")
    demo_cmd.add_argument("action", choices=("up", "down"))
    demo_cmd.add_argument(
        "--profile",
        choices=demo.PROFILES,
        default="local",
        help="local: pods run for real on a local node; kwok: simulated nodes",
    )
    return parser


def _clusters(profile: str | None) -> list[LocalCluster]:
    """The named profile's cluster, or else every profile with a running control plane
    (kwok when none runs). Under ARENASTACK_STATE both profiles share one folder, whose
    cluster.json names the profile that is running there."""
    if profile is not None:
        return [LocalCluster(profile=profile)]
    running = []
    for name in PROFILES:
        cluster = LocalCluster(profile=name)
        meta = cluster.state / "cluster.json"
        if meta.exists() and json.loads(meta.read_text()).get("profile", "kwok") == name:
            running.append(cluster)
    return running or [LocalCluster(profile=PROFILES[0])]


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.group == "demo":
        return demo.main(args.action, args.profile)
    try:
        if args.action == "up":
            cluster = LocalCluster(
                profile=args.profile, pod_cidr=os.environ.get("ARENASTACK_POD_CIDR")
            )
            cluster.up(cpu_nodes=args.cpu_nodes, gpu_nodes=args.gpu_nodes)
        elif args.action == "down":
            for cluster in _clusters(args.profile):
                cluster.down()
        elif args.action == "status":
            for cluster in _clusters(args.profile):
                print(f"# {cluster.profile}: {cluster.state}")
                for name, state in cluster.status().items():
                    print(f"{name:<24} {state}")
        elif args.action == "kubeconfig":
            print(_clusters(args.profile)[0].kubeconfig)
    except ClusterError as err:
        print(f"arenastack: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
