"""The DiT, its duration conditioning, the real-scale Stable Audio 3 codec and text encoder, and
the LoRA/DoRA adapters.

One model class for both scales (docs/design.md §1.3, §1.8): `EisbachDiT` holds a
`diffusers.StableAudio3DiTModel` (`transformer`) and a `StableAudio3DurationEmbedder`
(`duration_embedder`), exactly the two DiT-side modules of a Stable Audio 3 directory in the
diffusers layout. The embedded default builds them small and random (`build_base`); the real scale
loads them from a local directory (`load_base`). The forward pass reproduces the SA3 pipeline's
conditioning:

    g       = duration_embedder(seconds)                         [B, G]   global (AdaLN) input
    context = [tokens ; g]      mask = [token_mask ; True]        [B, L+1, D] cross-attention context
    v       = transformer(x, t, context, g, mask)                 padded text positions (mask False)
                                                                  are replaced inside the DiT by its
                                                                  learned `prompt_padding_embedding`

SA3 routes the duration to both the AdaLN input and the cross-attention context
(`prepare_cross_attention` in diffusers' pipeline_stable_audio_3.py), which needs the duration
embedding's width G to equal the text width D. So `dit_config` sets global_cond_dim = text_dim
(768 = 768 in SA3 Medium; 384 = MiniLM's width in the embedded default).

The null (unconditional) condition for classifier-free guidance is an all-False token mask: every
text position becomes the learned padding embedding; the duration token stays.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
from diffusers import AutoencoderSAME, StableAudio3DiTModel
from diffusers.pipelines.stable_audio_3.modeling_stable_audio_3 import StableAudio3DurationEmbedder
from peft import LoraConfig, get_peft_model_state_dict, inject_adapter_in_model, set_peft_model_state_dict
from peft.tuners.lora import LoraLayer
from safetensors.torch import load_file, save_file

from .basedir import BASE_PARTS, WEIGHTS, BaseDirError, check_base_dir, check_base_for  # noqa: F401 (re-exported)
from .config import Model
from .text import check_token_lengths

ADAPTER_KINDS = ("dora", "lora")
# peft matches a string target_modules with re.fullmatch against each module's name inside the
# transformer: the attention and feed-forward linear layers of every DiT block.
ADAPTER_TARGETS = (
    r"transformer_blocks\.\d+\."
    r"(self_attn\.(to_qkv|to_out)|cross_attn\.(to_q|to_kv|to_out)|ff\.(proj_in|proj_out))"
)


# --------------------------------------------------------------------------------------------
# configuration


def dit_config(model_cfg: Model, io_channels: int = 64, text_dim: int = 384) -> dict:
    """Keyword arguments of `diffusers.StableAudio3DiTModel` for a profile's `model` section
    (config.Model: embed_dim, depth, num_heads, ff_mult, num_memory_tokens, patch_size,
    timestep_features_dim). cond_token_dim = global_cond_dim = text_dim (see the module
    docstring); local_add_cond_dim = 1 (the inpainting input, unused here; 1 is the smallest the
    Linear allows). Differential attention as in SA3.
    """
    embed_dim, heads = model_cfg.embed_dim, model_cfg.num_heads
    if embed_dim % heads:
        raise ValueError(f"model.embed_dim ({embed_dim}) must be divisible by model.num_heads ({heads})")
    if (embed_dim // heads) % 4:
        raise ValueError(f"model: head width embed_dim/num_heads = {embed_dim // heads} must be a multiple of 4 (partial RoPE)")
    return {
        "io_channels": int(io_channels),
        "patch_size": model_cfg.patch_size,
        "embed_dim": embed_dim,
        "depth": model_cfg.depth,
        "num_heads": heads,
        "cond_token_dim": int(text_dim),
        "global_cond_dim": int(text_dim),
        "local_add_cond_dim": 1,
        "timestep_features_dim": model_cfg.timestep_features_dim,
        "ff_mult": float(model_cfg.ff_mult),
        "num_memory_tokens": model_cfg.num_memory_tokens,
        "use_differential_attention": True,
    }


# --------------------------------------------------------------------------------------------
# the model


class EisbachDiT(torch.nn.Module):
    """StableAudio3DiTModel + StableAudio3DurationEmbedder with SA3's conditioning (module docstring).

    forward(x [B, C, T], t [B], tokens [B, L, D], token_mask [B, L] bool, seconds [B]) -> v [B, C, T].
    T need not be a multiple of the patch size: the input is zero-padded on the right and the
    output cropped back to T.
    """

    def __init__(self, transformer: StableAudio3DiTModel, duration_embedder: StableAudio3DurationEmbedder):
        super().__init__()
        g_out = int(duration_embedder.config.output_dim)
        if g_out != transformer.config.global_cond_dim or g_out != transformer.config.cond_token_dim:
            raise ValueError(
                f"duration_embedder.output_dim ({g_out}) must equal the transformer's global_cond_dim "
                f"({transformer.config.global_cond_dim}) and cond_token_dim ({transformer.config.cond_token_dim})")
        self.transformer = transformer
        self.duration_embedder = duration_embedder

    @property
    def io_channels(self) -> int:
        return int(self.transformer.config.io_channels)

    @property
    def text_dim(self) -> int:
        return int(self.transformer.config.cond_token_dim)

    def forward(self, x: torch.Tensor, t: torch.Tensor, tokens: torch.Tensor, token_mask: torch.Tensor,
                seconds: torch.Tensor) -> torch.Tensor:
        n_frames, patch = x.shape[-1], int(self.transformer.config.patch_size)
        pad = (-n_frames) % patch
        if pad:
            x = torch.nn.functional.pad(x, (0, pad))
        g = self.duration_embedder(seconds.to(x.device))
        context = torch.cat([tokens, g[:, None, :].to(tokens.dtype)], dim=1)
        mask = torch.cat([token_mask.bool(), torch.ones_like(token_mask[:, :1], dtype=torch.bool)], dim=1)
        v = self.transformer(x, t, encoder_hidden_states=context, global_hidden_states=g,
                             encoder_attention_mask=mask, return_dict=False)[0]
        return v[..., :n_frames]


def drop_condition(token_mask: torch.Tensor, p: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """CFG condition dropout: each row of the token mask becomes all False with probability p.

    Always draws one uniform number per row from `generator` (also when p = 0), so the stream's
    consumption does not depend on p. The draw is on the CPU; the result is on token_mask's device.
    """
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"cond_dropout must be in [0, 1], got {p}")
    drop = torch.rand(token_mask.shape[0], generator=generator) < p
    return token_mask.bool() & ~drop.to(token_mask.device)[:, None]


def build_base(model_cfg: Model, io_channels: int = 64, text_dim: int = 384, seed: int = 0) -> EisbachDiT:
    """A randomly initialised EisbachDiT from a profile's `model` section; the same seed gives the
    same weights (the global RNG is forked, not disturbed)."""
    kw = dit_config(model_cfg, io_channels, text_dim)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        transformer = StableAudio3DiTModel(**kw)
        duration = StableAudio3DurationEmbedder(output_dim=kw["global_cond_dim"],
                                                fourier_dim=model_cfg.duration_fourier_dim)
    return EisbachDiT(transformer, duration)


def save_base(model: EisbachDiT, directory: str | Path) -> Path:
    """Write the DiT in the diffusers layout of a Stable Audio 3 directory:
    `dir/transformer/{config.json, diffusion_pytorch_model.safetensors}` and the same for
    `dir/duration_embedder/`. Adapters, if any, are not included (use `save_adapter`)."""
    directory = Path(directory)
    if _has_adapter(model):
        raise ValueError("save_base: the model carries an adapter; save the base before add_adapter, or use save_adapter")
    model.transformer.save_pretrained(directory / "transformer", safe_serialization=True)
    model.duration_embedder.save_pretrained(directory / "duration_embedder", safe_serialization=True)
    return directory


def _weights_present(folder: Path, stem: str = "diffusion_pytorch_model") -> bool:
    return (folder / f"{stem}.safetensors").exists() or (folder / f"{stem}.safetensors.index.json").exists()


def _require(directory: Path, parts: dict[str, list[str]], what: str) -> None:
    """Raise FileNotFoundError naming `directory` and every expected file that is absent.
    `parts` maps a description to alternative relative paths (any one of them suffices)."""
    missing = [" or ".join(alts) for alts in parts.values() if not any((directory / a).exists() for a in alts)]
    if missing:
        raise FileNotFoundError(
            f"{what}: {directory} is missing {', '.join(missing)} "
            f"(expected a Stable Audio 3 directory in the diffusers layout; nothing is downloaded at run time)")


def load_base(directory: str | Path, dtype: torch.dtype = torch.float32) -> EisbachDiT:
    """Load `dir/transformer` and `dir/duration_embedder` (a real Stable Audio 3 directory, one
    written by `save_base`, or a checkpoint folder of a base run). Raises FileNotFoundError at once,
    naming the directory and the files it looked for, when they are absent."""
    directory = Path(directory)
    _require(directory, {
        "tc": ["transformer/config.json"],
        "tw": [f"transformer/{WEIGHTS}", f"transformer/{WEIGHTS}.index.json"],
        "dc": ["duration_embedder/config.json"],
        "dw": [f"duration_embedder/{WEIGHTS}", f"duration_embedder/{WEIGHTS}.index.json"],
    }, "load_base")
    transformer = StableAudio3DiTModel.from_pretrained(directory, subfolder="transformer", torch_dtype=dtype)
    duration = StableAudio3DurationEmbedder.from_pretrained(directory, subfolder="duration_embedder", torch_dtype=dtype)
    return EisbachDiT(transformer, duration)


# --------------------------------------------------------------------------------------------
# adapters


def _has_adapter(model: torch.nn.Module) -> bool:
    return any("lora_" in name for name, _ in model.named_parameters())


def adapter_config(kind: str = "dora", rank: int = 16, alpha: float = 16):
    """The peft LoraConfig of an adapter kind: rank, alpha, no dropout, the DiT blocks' attention and
    feed-forward linears (ADAPTER_TARGETS); DoRA = LoRA with use_dora=True."""
    if kind not in ADAPTER_KINDS:
        raise ValueError(f"unknown adapter {kind!r}; use dora or lora")
    if int(rank) <= 0:
        raise ValueError(f"adapter rank must be > 0, got {rank}")
    return LoraConfig(r=int(rank), lora_alpha=float(alpha), lora_dropout=0.0, bias="none",
                      target_modules=ADAPTER_TARGETS, use_dora=(kind == "dora"))


def add_adapter(model: EisbachDiT, kind: str = "dora", rank: int = 16, alpha: float = 16, seed: int = 0) -> EisbachDiT:
    """Inject a LoRA/DoRA adapter (peft) into `model.transformer` in place and freeze everything else.

    peft's init: A ~ Kaiming-uniform, B = 0 (so the adapted model starts equal to the base), DoRA's
    magnitude = the column norms of the base weight. The same seed gives the same A (the global RNG
    is forked). Returns `model`.
    """
    if _has_adapter(model):
        raise ValueError("add_adapter: the model already carries an adapter")
    config = adapter_config(kind, rank, alpha)
    for p in model.parameters():
        p.requires_grad_(False)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        inject_adapter_in_model(config, model.transformer)
    for name, p in model.named_parameters():
        p.requires_grad_("lora_" in name)
    model.adapter_kind = kind
    model.peft_config = config
    return model


def adapter_state_dict(model: EisbachDiT) -> dict[str, torch.Tensor]:
    """The adapter's weights (peft key names, without the adapter name), detached CPU copies."""
    return {k: v.detach().cpu().clone().contiguous() for k, v in get_peft_model_state_dict(model.transformer).items()}


def save_adapter(model: EisbachDiT, directory: str | Path) -> Path:
    """Write `adapter_model.safetensors` and `adapter_config.json` (peft's format) to `directory`."""
    if not _has_adapter(model):
        raise ValueError("save_adapter: the model has no adapter")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    save_file(adapter_state_dict(model), str(directory / "adapter_model.safetensors"))
    model.peft_config.save_pretrained(str(directory))
    return directory


def load_adapter(base: EisbachDiT, directory: str | Path) -> EisbachDiT:
    """Inject the adapter saved in `directory` into `base` (in place) and load its weights."""
    directory = Path(directory)
    _require(directory, {"c": ["adapter_config.json"], "w": ["adapter_model.safetensors"]}, "load_adapter")
    config = LoraConfig.from_pretrained(str(directory))
    kind = "dora" if config.use_dora else "lora"
    add_adapter(base, kind, config.r, config.lora_alpha)
    result = set_peft_model_state_dict(base.transformer, load_file(str(directory / "adapter_model.safetensors")))
    unexpected = list(getattr(result, "unexpected_keys", []) or [])
    if unexpected:
        raise ValueError(f"load_adapter: {directory} holds weights the model has no place for: {unexpected[:5]}")
    return base


def merge_adapter(model: EisbachDiT) -> EisbachDiT:
    """Fold the adapter into the base weights for inference, in place (peft `LoraLayer.merge`):
    W' = W + s·BA for LoRA, W' = m ⊙ (W + s·BA) / ‖W + s·BA‖_col for DoRA, so a forward pass is the
    base layer's alone. The same function up to float32 rounding (max 6e-6 on generated latents of
    std 0.72, benchmarks/results/generation.md) at 1.3–1.6× the sampling speed on one thread: DoRA
    otherwise recomputes the column norms in every forward call. A model without an adapter is
    returned as is. Not for training: the merged weights are no longer the trainable ones."""
    for module in model.modules():
        if isinstance(module, LoraLayer) and not module.merged:
            module.merge()
    return model


def count_parameters(model: torch.nn.Module) -> dict[str, int]:
    """{'total': all parameters, 'trainable': those with requires_grad}."""
    return {"total": sum(p.numel() for p in model.parameters()),
            "trainable": sum(p.numel() for p in model.parameters() if p.requires_grad)}


# --------------------------------------------------------------------------------------------
# real-scale audio and text (Stable Audio 3 directory)


def _folder_fingerprint(base_dir: Path, *folders: str) -> str:
    """cache.fingerprint_files over every file of `folders` in base_dir (configs, weights, tokenizer):
    what identifies a codec or text encoder in the pre-encoded cache's key."""
    from .cache import fingerprint_files  # heavy: pandas (.cache imports it)

    files = [f for d in folders for f in (base_dir / d).rglob("*") if f.is_file()]
    return fingerprint_files(files, base_dir)


class SA3Codec:
    """The Stable Audio 3 autoencoder (`diffusers.AutoencoderSAME` from `base_dir/vae`), duck-typed
    like MelCodec: `encode(audio) -> latents [B, C, T']`, `decode(latents) -> audio [B, S]` (mono,
    the mean of the stereo channels; `stereo=True` keeps [B, 2, S]), `frames(seconds)`,
    `sample_rate` (44.1 kHz), `latent_channels` (= `dim`)."""

    def __init__(self, base_dir: str | Path, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32):
        self.base_dir = Path(base_dir)
        _require(self.base_dir, {"c": ["vae/config.json"], "w": [f"vae/{WEIGHTS}", f"vae/{WEIGHTS}.index.json"]},
                 "SA3Codec")
        self.vae = AutoencoderSAME.from_pretrained(self.base_dir, subfolder="vae", torch_dtype=dtype).to(device).eval()
        self.device, self.dtype = torch.device(device), dtype
        self.sample_rate = int(self.vae.config.sampling_rate)
        self.latent_channels = int(self.vae.config.latent_dim)
        self.dim = self.latent_channels
        self.hop = int(self.vae.downsampling_ratio)
        self.cache_key = f"SA3Codec:{_folder_fingerprint(self.base_dir, 'vae')}"

    def frames(self, seconds: float) -> int:
        """Latent frames for `seconds` of audio (rounded up, as the SA3 pipeline does)."""
        return int(math.ceil(seconds * self.sample_rate / self.hop))

    @torch.no_grad()
    def encode(self, audio: torch.Tensor) -> torch.Tensor:
        """audio [B, S] (mono, duplicated to stereo) or [B, 2, S] at 44.1 kHz -> latents [B, C, T'].
        S is zero-padded up to a multiple of the downsampling ratio."""
        audio = torch.as_tensor(audio, dtype=torch.float32)
        if audio.dim() == 2:
            audio = audio[:, None, :].expand(-1, int(self.vae.config.audio_channels), -1)
        pad = (-audio.shape[-1]) % self.hop
        audio = torch.nn.functional.pad(audio, (0, pad))
        lat = self.vae.encode(audio.to(self.device, self.dtype)).latents
        return lat.float().cpu()

    @torch.no_grad()
    def decode(self, latents: torch.Tensor, generator: torch.Generator | None = None, stereo: bool = False) -> torch.Tensor:
        """latents [B, C, T'] -> audio [B, S] mono in [-1, 1] (or [B, 2, S] with stereo=True).
        `generator` is accepted for MelCodec compatibility; SAME decoding is deterministic."""
        y = self.vae.decode(torch.as_tensor(latents).to(self.device, self.dtype)).sample.float().clamp(-1, 1).cpu()
        return y if stereo else y.mean(dim=1)


class SA3TextEncoder:
    """The Stable Audio 3 text encoder: T5Gemma's encoder (`transformers.T5GemmaEncoderModel` from
    `base_dir/text_encoder`) with its Gemma tokenizer (`base_dir/tokenizer`), as the SA3 pipeline
    encodes prompts: padding to max_length, last hidden state. SA3 caps prompts at 256 tokens; here
    at `max_tokens`, and a longer caption raises text.CaptionTooLong instead of being cut. `encode(captions) -> (tokens [B, L, dim] float32, mask [B, L] bool)`;
    padded positions are zeroed (the DiT replaces them by its padding embedding anyway)."""

    def __init__(self, base_dir: str | Path, max_tokens: int = 256, device: str | torch.device = "cpu",
                 dtype: torch.dtype = torch.float32):
        from transformers import AutoTokenizer, T5GemmaEncoderModel  # heavy: transformers (T5Gemma's modules)

        self.base_dir = Path(base_dir)
        _require(self.base_dir, {
            "c": ["text_encoder/config.json"],
            "w": ["text_encoder/model.safetensors", "text_encoder/model.safetensors.index.json"],
            "t": ["tokenizer/tokenizer.json", "tokenizer/tokenizer.model"],
        }, "SA3TextEncoder")
        self.max_tokens = min(int(max_tokens), 256)
        self.device = torch.device(device)
        self.tokenizer = AutoTokenizer.from_pretrained(str(self.base_dir / "tokenizer"))
        self.model = T5GemmaEncoderModel.from_pretrained(str(self.base_dir / "text_encoder"), dtype=dtype).to(device).eval()
        self.dim = int(self.model.get_input_embeddings().embedding_dim)
        self.cache_key = f"SA3TextEncoder:{_folder_fingerprint(self.base_dir, 'text_encoder', 'tokenizer')}"

    @torch.no_grad()
    def encode(self, captions: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        check_token_lengths(list(captions), self.max_tokens, tokenizer=self.tokenizer)  # no silent truncation
        enc = self.tokenizer(list(captions), padding="max_length", max_length=self.max_tokens, truncation=True,
                             return_tensors="pt")
        ids, mask = enc.input_ids.to(self.device), enc.attention_mask.to(self.device)
        hidden = self.model(ids, attention_mask=mask)[0].float()
        mask = mask.bool()
        return (hidden * mask[..., None]).cpu(), mask.cpu()


__all__ = ["BaseDirError", "BASE_PARTS", "check_base_dir", "check_base_for", "dit_config", "EisbachDiT", "drop_condition", "build_base", "save_base", "load_base", "add_adapter",
           "save_adapter", "load_adapter", "adapter_config", "adapter_state_dict", "count_parameters", "SA3Codec",
           "SA3TextEncoder"]
