"""Make a tiny deterministic Llama model for the real vLLM engine, with no model hub.

    <vllm venv>/bin/python devcluster/make_tiny_model.py [--name NAME] [--seed N] [--out DIR]
    <vllm venv>/bin/python devcluster/make_tiny_model.py --lora-for MODEL_DIR [--seed N]

Prints the model (or LoRA adapter) directory. Runs in the vLLM environment (hack/vllm-env.sh),
which has torch,
transformers and tokenizers. The result is cached: the same name and seed give the same files,
made once. Weights are random (seeded) in float32, so outputs repeat exactly; the tokenizer is a
byte-level BPE trained on the Python standard library's sources, with a ChatML chat template.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sysconfig
import tempfile
from pathlib import Path

VERSION = 1  # bump when the recipe changes, so caches are remade
VOCAB_SIZE = 2048
HIDDEN = 128
LAYERS = 2
HEADS = 4
KV_HEADS = 2
INTERMEDIATE = 256
MAX_POSITIONS = 2048
TRAINING_FILES = 300  # standard-library modules the tokenizer learns from (sorted, so fixed)
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
CHATML = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
DEFAULT_ROOT = (
    Path(os.environ.get("ARENASTACK_CACHE") or Path.home() / ".cache" / "arenastack") / "models"
)


def training_text() -> list[str]:
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    files = sorted(p for p in stdlib.glob("*.py"))[:TRAINING_FILES]
    return [p.read_text(errors="replace") for p in files]


def make_tokenizer(out: Path) -> None:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(training_text(), trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token="<|endoftext|>",
        eos_token="<|im_end|>",
        unk_token="<|endoftext|>",
        pad_token="<|endoftext|>",
    )
    fast.chat_template = CHATML
    fast.save_pretrained(out)


def make_model(out: Path, seed: int, vocab: int, eos: int, bos: int) -> None:
    import torch
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=vocab,
        hidden_size=HIDDEN,
        intermediate_size=INTERMEDIATE,
        num_hidden_layers=LAYERS,
        num_attention_heads=HEADS,
        num_key_value_heads=KV_HEADS,
        max_position_embeddings=MAX_POSITIONS,
        bos_token_id=bos,
        eos_token_id=eos,
        tie_word_embeddings=False,
        torch_dtype="float32",
    )
    model = LlamaForCausalLM(config).to(torch.float32)
    model.save_pretrained(out, safe_serialization=True)
    GenerationConfig(bos_token_id=bos, eos_token_id=eos).save_pretrained(out)


def build(name: str, seed: int, root: Path) -> Path:
    target = root / f"{name}-v{VERSION}-seed{seed}"
    if (target / "config.json").exists():
        return target
    root.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=root))
    try:
        make_tokenizer(work)
        tokenizer = json.loads((work / "tokenizer.json").read_text())
        vocab = tokenizer["model"]["vocab"]
        added = {t["content"]: t["id"] for t in tokenizer["added_tokens"]}
        size = max([*vocab.values(), *added.values()]) + 1
        make_model(work, seed, size, added["<|im_end|>"], added["<|endoftext|>"])
        work.rename(target)  # atomic: a half-made model is never seen
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return target


LORA_RANK = 8
LORA_TARGETS = ("q_proj", "v_proj")


def build_lora(base: Path, seed: int, root: Path) -> Path:
    """A PEFT-format LoRA adapter for `base` (q_proj and v_proj of every layer), seeded and
    large enough to change the model's answers, so serving it is visible."""
    import torch
    from safetensors.torch import save_file

    target = root / f"{base.name}-lora-seed{seed}"
    if (target / "adapter_config.json").exists():
        return target
    config = json.loads((base / "config.json").read_text())
    hidden = config["hidden_size"]
    head_dim = hidden // config["num_attention_heads"]
    out_dims = {"q_proj": hidden, "v_proj": config["num_key_value_heads"] * head_dim}
    generator = torch.Generator().manual_seed(seed)
    tensors = {}
    for layer in range(config["num_hidden_layers"]):
        for module in LORA_TARGETS:
            prefix = f"base_model.model.model.layers.{layer}.self_attn.{module}"
            tensors[f"{prefix}.lora_A.weight"] = torch.randn(LORA_RANK, hidden, generator=generator)
            tensors[f"{prefix}.lora_B.weight"] = torch.randn(
                out_dims[module], LORA_RANK, generator=generator
            )
    root.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=root))
    try:
        save_file(tensors, str(work / "adapter_model.safetensors"))
        (work / "adapter_config.json").write_text(json.dumps({
            "peft_type": "LORA", "task_type": "CAUSAL_LM", "r": LORA_RANK,
            "lora_alpha": 2 * LORA_RANK, "lora_dropout": 0.0, "bias": "none",
            "target_modules": list(LORA_TARGETS), "base_model_name_or_path": str(base),
            "fan_in_fan_out": False, "inference_mode": True,
        }, indent=1))  # fmt: skip
        work.rename(target)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--name", default="tiny-llama")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=DEFAULT_ROOT, help=f"default {DEFAULT_ROOT}")
    parser.add_argument("--lora-for", type=Path, help="make a LoRA adapter for this model")
    args = parser.parse_args()
    if args.lora_for is not None:
        print(build_lora(args.lora_for, args.seed, args.out))
    else:
        print(build(args.name, args.seed, args.out))


if __name__ == "__main__":
    main()
