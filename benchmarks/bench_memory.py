"""Memory of the real-scale path: measured on the stand-in, scaled to Stable Audio 3 medium.

Per profile (finetune.batch_size, corpus.seconds -> latent frames at SA3's 4096-sample hop,
text.max_tokens), three parts of a fine-tuning step's memory:

  weights      frozen DiT (fp32, as load_base loads it) = DiT parameters x 4 B
  adapter      DoRA r16 trainable parameters x 16 B (fp32 weight, gradient, Adam m and v)
  activations  the bytes autograd saves for the backward pass, counted with
               torch.autograd.graph.saved_tensors_hooks (each storage once; parameters excluded)

On the stand-in the three are counted on real CPU tensors. For SA3 medium the parameter counts
come from instantiating the diffusers classes at SA3-medium sizes on the meta device (DiT = the
StableAudio3DiTModel defaults, SAME-L, T5Gemma-b encoder), and the activations are counted the same
way on meta tensors (shapes only, no memory). The meta count is checked against the real count at
the stand-in size (they must agree). fp32 throughout: bf16 autocast (the CUDA default) stores most
activations in half the bytes, so the activation figures are an upper bound.

    PYTHONPATH=. python3 benchmarks/bench_memory.py      # writes benchmarks/results/memory.md
"""

from __future__ import annotations

import math
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from eisbach_lib.config import load_profile  # noqa: E402
from eisbach_lib.models import EisbachDiT, add_adapter, load_base  # noqa: E402
from eisbach_lib.standin import build_standin  # noqa: E402

HOP, RATE = 4096, 44100
GiB = 2 ** 30


def sa3_medium(device: str = "meta") -> dict[str, torch.nn.Module]:
    """The four parts at SA3-medium sizes (module docstring), without memory on the meta device."""
    from diffusers import AutoencoderSAME, StableAudio3DiTModel
    from diffusers.pipelines.stable_audio_3.modeling_stable_audio_3 import StableAudio3DurationEmbedder
    from transformers import T5GemmaConfig, T5GemmaEncoderModel

    layer = dict(hidden_size=768, intermediate_size=2048, num_hidden_layers=12, num_attention_heads=12,
                 num_key_value_heads=12, head_dim=64, vocab_size=256000)
    with torch.device(device):
        return {"transformer": StableAudio3DiTModel(), "duration_embedder": StableAudio3DurationEmbedder(),
                "vae": AutoencoderSAME(encoder_channels=256, encoder_transformer_depths=(12,),
                                       decoder_sinusoidal_blocks=(8,)),
                "text_encoder": T5GemmaEncoderModel(T5GemmaConfig(encoder=layer, decoder=layer, vocab_size=256000,
                                                                  is_encoder_decoder=False))}


def sa3_medium_dit() -> tuple[torch.nn.Module, torch.nn.Module]:
    """A fresh SA3-medium transformer and duration embedder on the meta device."""
    from diffusers import StableAudio3DiTModel
    from diffusers.pipelines.stable_audio_3.modeling_stable_audio_3 import StableAudio3DurationEmbedder

    with torch.device("meta"):
        return StableAudio3DiTModel(), StableAudio3DurationEmbedder()


def saved_bytes(model: EisbachDiT, batch: int, frames: int, tokens: int, device: str) -> int:
    """Bytes autograd keeps for backward in one forward pass of `model` (adapter attached): each
    tensor counted once (by storage on real devices, by tensor identity on meta), parameters and
    views of parameters excluded (they exist anyway)."""
    params = {id(p) for p in model.parameters()}
    storages = {p.untyped_storage().data_ptr() for p in model.parameters()} if device != "meta" else set()
    seen: set = set()
    kept: list[torch.Tensor] = []  # strong references: no id is reused while counting
    total = 0

    def pack(t: torch.Tensor):
        nonlocal total
        base = t._base if t._base is not None else t
        kept.append(t)
        if id(t) in params or id(base) in params:
            return t
        key = t.untyped_storage().data_ptr() if device != "meta" else id(base)
        if key in storages or key in seen:
            return t
        seen.add(key)
        total += (base.numel() if device == "meta" else t.untyped_storage().nbytes() // t.element_size()) * t.element_size()
        return t

    io, width = model.io_channels, model.text_dim
    g = torch.Generator().manual_seed(0)
    x = torch.randn(batch, io, frames, generator=g).to(device)
    args = (x, torch.rand(batch, generator=g).to(device), torch.randn(batch, tokens, width, generator=g).to(device),
            torch.ones(batch, tokens, dtype=torch.bool).to(device), torch.full((batch,), 10.0).to(device))
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = model(*args)  # kept alive while counting: the graph holds every saved tensor (no id is reused)
    del out, kept
    return total


def count(module: torch.nn.Module, trainable: bool = False) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable)


def main() -> None:
    torch.set_num_threads(1)
    profiles = {name: load_profile(name) for name in ("smoke", "cpu", "gpu")}
    shapes = {n: (c.finetune.batch_size, math.ceil(c.corpus.seconds * RATE / HOP), c.text.max_tokens,
                  c.generate.batch_size) for n, c in profiles.items()}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        sa3 = build_standin(Path(tmp) / "sa3")
        for name, (b, t, l, _) in shapes.items():
            real = add_adapter(load_base(sa3), "dora", 16, 16)
            on_cpu = saved_bytes(real, b, t, l, "cpu")
            meta = load_base(sa3).to("meta")
            on_meta = saved_bytes(add_adapter(meta, "dora", 16, 16), b, t, l, "meta")
            rows.append(("stand-in, dora", name, b, t, l, count(real) - count(real, True), count(real, True), on_cpu, on_meta))
    parts = sa3_medium()
    extra = {k: count(m) for k, m in parts.items()}
    for kind in ("dora", "lora"):
        full = add_adapter(EisbachDiT(*sa3_medium_dit()), kind, 16, 16)
        for name, (b, t, l, _) in shapes.items():
            act = saved_bytes(full, b, t, l, "meta")
            rows.append((f"SA3 medium, {kind}", name, b, t, l, count(full) - count(full, True), count(full, True), None, act))
    lines = ["# Memory of a fine-tuning step on the real-scale path", "",
             "Written by `benchmarks/bench_memory.py` (method in its docstring). fp32 bytes; bf16 autocast roughly "
             "halves the activations.", "",
             "| model | profile | batch | latent frames | text tokens | frozen DiT params | DoRA params | "
             "activations counted on CPU | activations counted on meta | weights + adapter + activations (meta) |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for model, name, b, t, l, frozen, train, cpu, meta in rows:
        total = frozen * 4 + train * 16 + meta
        lines.append(f"| {model} | {name} | {b} | {t} | {l} | {frozen:,} | {train:,} | "
                     f"{'' if cpu is None else f'{cpu / 2**20:.2f} MiB'} | {meta / 2**20:.2f} MiB | "
                     f"{total / 2**20:,.1f} MiB |")
    lines += ["", "SA3-medium parameter counts (meta device): " + ", ".join(f"{k} {v:,}" for k, v in extra.items()) + ".",
              f"Generation and corpus encoding hold the DiT, the VAE and the text encoder: "
              f"{sum(extra.values()) * 4 / GiB:.1f} GiB of fp32 weights ({sum(extra.values()) * 2 / GiB:.1f} GiB in bf16), "
              "plus the batch's activations (no gradients)."]
    out = Path(__file__).resolve().parent / "results" / "memory.md"
    out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
