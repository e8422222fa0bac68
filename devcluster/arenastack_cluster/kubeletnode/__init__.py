"""The local node as users run one: the upstream kubelet with containerd, runc and the
CNI plugins, all inside the node's network namespace, running the project's own images.

`settings` renders the components' configuration (no I/O); `node` starts, imports the
images into, and cleans up after them.
"""
