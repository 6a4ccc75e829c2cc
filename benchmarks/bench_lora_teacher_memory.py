"""Peak memory of one RIFT training step under LoRA: the frozen teacher as the model with its adapters
switched off (what ``--lora-rank`` does) against a full copy of the base model as the teacher.

A random Llama-style decoder (``--hidden``, ``--layers``; vocabulary 32,000) is built in each mode's
own process; each mode builds the RIFT objective (teacher included) and runs one step (ASCC adversary,
forward, backward, AdamW step) on a batch of ``--batch`` inputs of ``--length`` tokens. The figure is the
growth of the peak resident memory from the loaded model to the end of the step (CPU: VmHWM; GPU:
the CUDA allocator's peak).

    python benchmarks/bench_lora_teacher_memory.py --hidden 512 --layers 8
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

MODES = {
    "lora-shared": "LoRA, teacher = the model with its adapters disabled",
    "lora-copy": "LoRA, teacher = a full copy of the base model",
    "full": "full fine-tuning, teacher = a full copy",
}
VOCABULARY = 32000


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith(field + ":"))


def run_mode(mode: str, hidden: int, layers: int, batch: int, length: int, rank: int) -> dict:
    """One mode in this process: {"mode", "peak_mib", "teacher_parameters", "trainable_parameters"}."""
    import torch
    from transformers import LlamaConfig, LlamaModel

    from rift_fast.models import RobustClassifier
    from rift_fast.models.lora import LoraOptions
    from rift_fast.training.adversary import substitution_ids
    from rift_fast.training.defenses import defense_class
    from rift_fast.training.teacher import FrozenTeacher

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=VOCABULARY,
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=hidden // 64,
        num_key_value_heads=hidden // 64,
        intermediate_size=hidden * 11 // 4,
        max_position_embeddings=4 * length,
        pad_token_id=0,
    )
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model = RobustClassifier(LlamaModel(config), 2).to(device)
    ids = torch.randint(1, VOCABULARY, (batch, length), device=device)
    mask = torch.ones_like(ids)
    table = torch.randint(1, VOCABULARY, (VOCABULARY, 8))
    data = {
        "input_ids": ids,
        "attention_mask": mask,
        "token_type_ids": torch.zeros_like(ids),
        "labels": torch.arange(batch, device=device) % 2,
        "sub_ids": substitution_ids(ids, table, mask),
    }
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
    else:
        before = _status_kib("VmRSS")
        with open("/proc/self/clear_refs", "w") as refs:
            refs.write("5")  # reset VmHWM to the current RSS
    copy_teacher = FrozenTeacher(model) if mode == "lora-copy" else None  # built before the adapters
    if mode != "full":
        model.use_lora(LoraOptions(rank, 2.0 * rank, 0.0, ("q_proj", "k_proj", "v_proj", "o_proj")))
    rift = defense_class("rift")
    objective = rift(model, rift.settings_type(adversary_steps=2)).to(device)
    if copy_teacher is not None:
        objective.teacher = copy_teacher
    optimizer = torch.optim.AdamW([p for p in objective.parameters() if p.requires_grad], lr=1e-4)
    objective.train()
    objective(data)["loss"].backward()
    optimizer.step()
    if device.type == "cuda":
        torch.cuda.synchronize()
        peak = (torch.cuda.max_memory_allocated() - before) / 2**20
    else:
        peak = (_status_kib("VmHWM") - before) / 1024
    return {
        "mode": mode,
        "device": str(device),
        "peak_mib": round(peak, 1),
        "teacher_parameters": sum(p.numel() for p in objective.teacher.parameters()),
        "model_parameters": sum(p.numel() for p in model.parameters()),
        "trainable_parameters": sum(p.numel() for p in objective.parameters() if p.requires_grad),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hidden", type=int, default=512)
    parser.add_argument("--layers", type=int, default=8)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--length", type=int, default=64)
    parser.add_argument("--rank", type=int, default=8)
    parser.add_argument("--mode", choices=sorted(MODES), help="run one mode here (the driver runs each in its own)")
    args = parser.parse_args()
    sizes = [str(v) for v in (args.hidden, args.layers, args.batch, args.length, args.rank)]
    if args.mode:
        print(json.dumps(run_mode(args.mode, args.hidden, args.layers, args.batch, args.length, args.rank)))
        return
    for mode, meaning in MODES.items():
        flags = ["--hidden", "--layers", "--batch", "--length", "--rank"]
        command = [sys.executable, __file__, "--mode", mode, *(x for pair in zip(flags, sizes) for x in pair)]
        result = json.loads(subprocess.run(command, check=True, capture_output=True, text=True).stdout)
        print(json.dumps({**result, "meaning": meaning}))


if __name__ == "__main__":
    main()
