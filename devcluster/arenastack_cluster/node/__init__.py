"""The local node as users run one: the upstream kubelet with containerd, runc and the
CNI plugins, all inside the node's network namespace, running the project's own images.

`config` holds the node's settings and the little it needs of the control plane (a
Protocol, so nothing here imports the cluster module); `settings` renders the components'
configuration (no I/O); `network` makes the node's namespace and bridge; `kubelet` starts
containerd and the kubelet, imports the images, and cleans up after them; `profile` adds
kube-proxy and CoreDNS beside them.
"""
