"""`arenastack` command line: the local development cluster.

arenastack cluster up [--profile kwok] [--cpu-nodes 4] [--gpu-nodes 4]
arenastack cluster down | status | kubeconfig
"""

from __future__ import annotations

import argparse
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
        help="kwok: simulated nodes (integration tests, scale); local: pods run as real "
        "processes on a local node (end-to-end tests, the demo)",
    )
    up.add_argument("--cpu-nodes", type=int, default=4)
    up.add_argument("--gpu-nodes", type=int, default=4)
    for name, text in (
        ("down", "stop everything `up` started"),
        ("status", "show each component"),
        ("kubeconfig", "print the admin kubeconfig path"),
    ):
        p = actions.add_parser(name, help=text)
        p.add_argument("--profile", choices=PROFILES, default="kwok")
    demo_cmd = sub.add_parser("demo", help="the local stack with the chart and operator")
    demo_cmd.add_argument("action", choices=("up", "down"))
    demo_cmd.add_argument(
        "--profile",
        choices=demo.PROFILES,
        default="local",
        help="local: pods run for real on a local node; kwok: simulated nodes",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.group == "demo":
        return demo.main(args.action, args.profile)
    cluster = LocalCluster(profile=args.profile)
    try:
        if args.action == "up":
            cluster.up(cpu_nodes=args.cpu_nodes, gpu_nodes=args.gpu_nodes)
        elif args.action == "down":
            cluster.down()
        elif args.action == "status":
            for name, state in cluster.status().items():
                print(f"{name:<24} {state}")
        elif args.action == "kubeconfig":
            print(cluster.kubeconfig)
    except ClusterError as err:
        print(f"arenastack: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
