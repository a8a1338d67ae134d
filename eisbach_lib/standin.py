"""A tiny random-weight Stable Audio 3 stand-in: the real-scale code path without the weights.

`build_standin(dir, seed)` saves, with `diffusers.StableAudio3Pipeline.save_pretrained`, a directory
in exactly the diffusers layout of a Stable Audio 3 checkpoint:

    model_index.json
    transformer/        StableAudio3DiTModel        io 8, embed 32, depth 1, 2 heads, cond width 16
    duration_embedder/  StableAudio3DurationEmbedder output 16 (= the DiT's conditioning widths)
    vae/                AutoencoderSAME             latent 8, SA3's hop 256 x 16 = 4096 samples, 44.1 kHz
    text_encoder/       T5GemmaEncoderModel          hidden 16, one layer
    tokenizer/          PreTrainedTokenizerFast      word level (Gemma's tokenizer is hub-only)
    scheduler/          FlowMatchEulerDiscreteScheduler

Every part holds a few thousand parameters (weights that start at zero are redrawn, so the
DiT listens to its condition and the VAE decodes different latents to different audio), so the whole chain (corpus -> train -> generate ->
evaluate, and the notebook series) runs on it in minutes on a CPU. The widths obey the same rules
as the real checkpoint (duration width = DiT conditioning widths = text hidden size; VAE latent
width = DiT io channels), so a stand-in exercises every shape check a real directory meets. The
weights are random: what comes out is noise, and only the plumbing is tested.

`standin_profile(base_dir, out_yaml, runs_dir)` writes a copy of a profile (default configs/smoke.yaml)
with `model.base_dir` pointing at the stand-in. Command line, for a dry run before real weights:

    python3 -m eisbach_lib.standin /tmp/sa3-standin --profile-out /tmp/standin.yaml
    python3 -m eisbach_lib.cli reproduce --profile /tmp/standin.yaml
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
import yaml
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers

from .config import CONFIGS, set_dotted

LATENT_DIM = 8    # the VAE's latent width = the DiT's io channels
TEXT_DIM = 16     # T5Gemma hidden size = duration width = the DiT's cond_token_dim = global_cond_dim
WAKE_STD = 0.2    # std of the weights `_wake` redraws
# lower-case words of the chamber captions and the card prompts; anything else is <unk>
VOCAB_WORDS = (
    "a an and the of with in on for to by at as is slow fast calm soft loud bright dark gentle warm quiet "
    "piano cello violin viola flute oboe clarinet bassoon horn trumpet harp guitar organ strings string quartet "
    "trio duo solo ensemble chamber music piece melody chords chord arpeggio arpeggios rhythm texture sustained "
    "pad drone staccato legato lively playful sad happy dreamy ambient glockenspiel toy minor major tempo bpm "
    "drums bass synth electronic orchestral choir voice"
).split()


def _tokenizer():
    """A word-level fast tokenizer with Gemma's special tokens (pad 0, eos 1, bos 2, unk 3), lower-casing."""
    from transformers import PreTrainedTokenizerFast  # heavy: transformers

    vocab = {"<pad>": 0, "<eos>": 1, "<bos>": 2, "<unk>": 3}
    for w in VOCAB_WORDS:
        vocab.setdefault(w, len(vocab))
    tk = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tk.normalizer = normalizers.Lowercase()
    tk.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(tokenizer_object=tk, pad_token="<pad>", eos_token="<eos>", bos_token="<bos>",
                                   unk_token="<unk>", model_max_length=256)


def _wake(module: torch.nn.Module, std: float = WAKE_STD) -> None:
    """Redraw from N(0, std²) every weight that starts (near) zero: the zero-initialised output
    projections of the attention and feed-forward blocks, the DiT's pre/post-processing convolutions,
    the prompt padding embedding and the SAME resampling blocks' 1e-5 "new tokens". At random init
    they make the DiT ignore its condition and the VAE decoder ignore its latents (every latent
    decodes to the same audio), so a stand-in would not tell right inputs from wrong ones.
    Biases and norm offsets stay zero."""
    with torch.no_grad():
        for name, p in module.named_parameters():
            leaf = name.rsplit(".", 1)[-1]
            if leaf not in ("bias", "beta") and p.numel() and float(p.abs().max()) < 1e-3:
                p.normal_(0.0, std)


def build_standin(directory: str | Path, seed: int = 0) -> Path:
    """Save a tiny random Stable Audio 3 directory (module docstring) to `directory` and return it.
    The same seed gives the same weights (the global RNG is forked, not disturbed)."""
    from diffusers import AutoencoderSAME, FlowMatchEulerDiscreteScheduler, StableAudio3DiTModel, StableAudio3Pipeline  # heavy: diffusers
    from diffusers.pipelines.stable_audio_3.modeling_stable_audio_3 import StableAudio3DurationEmbedder  # heavy: diffusers
    from transformers import T5GemmaConfig, T5GemmaEncoderModel  # heavy: transformers

    directory = Path(directory)
    tokenizer = _tokenizer()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        transformer = StableAudio3DiTModel(io_channels=LATENT_DIM, patch_size=1, embed_dim=32, depth=1, num_heads=2,
                                           cond_token_dim=TEXT_DIM, global_cond_dim=TEXT_DIM, local_add_cond_dim=1,
                                           timestep_features_dim=16, ff_mult=2.0, num_memory_tokens=0)
        duration = StableAudio3DurationEmbedder(output_dim=TEXT_DIM, fourier_dim=16)
        vae = AutoencoderSAME(audio_channels=2, patch_size=256, encoder_channels=8, encoder_c_mults=(2,),
                              encoder_strides=(16,), encoder_transformer_depths=(1,), latent_dim=LATENT_DIM,
                              dim_heads=8, ff_mult=2, sampling_rate=44100)
        layer = {"hidden_size": TEXT_DIM, "intermediate_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2,
                 "num_key_value_heads": 1, "head_dim": 8, "vocab_size": len(tokenizer)}
        text = T5GemmaEncoderModel(T5GemmaConfig(encoder=layer, decoder=layer, vocab_size=len(tokenizer),
                                                 is_encoder_decoder=False))
        for part in (transformer, duration, vae, text):
            _wake(part)
    pipe = StableAudio3Pipeline(vae=vae, text_encoder=text, tokenizer=tokenizer, duration_embedder=duration,
                                transformer=transformer, scheduler=FlowMatchEulerDiscreteScheduler(shift=1.0))
    pipe.save_pretrained(str(directory), safe_serialization=True)
    return directory


def standin_profile(base_dir: str | Path, out_yaml: str | Path, runs_dir: str | Path | None = None,
                    template: str | Path = CONFIGS / "smoke.yaml", overrides: dict | None = None) -> Path:
    """Write a copy of the profile `template` with model.base_dir = `base_dir` and runs_dir / figures_dir
    under `runs_dir` (default: next to `out_yaml`). The name stays the template's: the notebooks pick
    their smoke sizes by `name == "smoke"`. `overrides` maps
    dotted keys ("finetune.steps") to values. Returns the YAML path."""
    out_yaml = Path(out_yaml)
    runs = Path(runs_dir) if runs_dir else out_yaml.parent / "runs_standin"
    raw = yaml.safe_load(Path(template).read_text())  # the YAML as written: a copy keeps its keys and order
    where = {"model.base_dir": str(Path(base_dir).resolve()), "runs_dir": str(runs.resolve()),
             "figures_dir": str((runs / "figures").resolve())}
    for key, value in {**where, **(overrides or {})}.items():
        set_dotted(raw, key, value)
    out_yaml.parent.mkdir(parents=True, exist_ok=True)
    out_yaml.write_text(yaml.safe_dump(raw, sort_keys=False))
    return out_yaml


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python3 -m eisbach_lib.standin", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("directory", help="where to write the stand-in Stable Audio 3 directory")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--profile-out", default=None, help="also write a smoke-profile copy pointing at it here")
    args = p.parse_args(argv)
    print(f"stand-in: {build_standin(args.directory, args.seed)}")
    if args.profile_out:
        print(f"profile: {standin_profile(args.directory, args.profile_out)}")


if __name__ == "__main__":
    main()
