"""The local node: a node agent that runs the pods bound to it as real processes.

Each pod gets a network namespace (its own IP and port space on a bridge), a
mount namespace in which its volumes are bind-mounted at their mountPaths, and
a PID namespace per container so that stopping a container ends its whole
process tree. Images map to local runtimes (virtual environments) through
hack/localnode-images.yaml; the pod's own command runs in them.
"""
