"""The DiT wrapper, the diffusers-layout round trips, the adapters and the real-scale loaders, at tiny sizes."""

from pathlib import Path

import dataclasses

import pytest
import torch

from eisbach_lib.config import Model
from eisbach_lib.models import (EisbachDiT, SA3Codec, SA3TextEncoder, add_adapter, build_base, count_parameters,
                                dit_config, drop_condition, load_adapter, load_base, save_adapter, save_base)
from eisbach_lib.text import CaptionTooLong

TINY = Model(embed_dim=32, depth=1, num_heads=2, ff_mult=2.0)
C, D = 8, 16


def inputs(b: int = 3, t: int = 21, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    mask = torch.zeros(b, 5, dtype=torch.bool)
    for i in range(b):
        mask[i, : 2 + i % 3] = True
    return (torch.randn(b, C, t, generator=g), torch.rand(b, generator=g), torch.randn(b, 5, D, generator=g), mask,
            torch.linspace(3.0, 8.0, b))


def tiny(seed: int = 0, **over) -> EisbachDiT:
    return build_base(dataclasses.replace(TINY, **over), io_channels=C, text_dim=D, seed=seed)


def test_config_and_forward_shape():
    kw = dit_config(TINY, C, D)
    assert kw["cond_token_dim"] == kw["global_cond_dim"] == D and kw["local_add_cond_dim"] == 1
    m = tiny()
    x, t, tok, mask, sec = inputs()
    assert m(x, t, tok, mask, sec).shape == x.shape
    # patch 2 with an odd length: padded inside, cropped back
    m2 = tiny(patch_size=2)
    assert m2(x, t, tok, mask, sec).shape == x.shape
    with pytest.raises(ValueError, match="divisible"):
        dit_config(dataclasses.replace(TINY, num_heads=3), C, D)


def test_build_is_deterministic_per_seed():
    a, b, c = tiny(0), tiny(0), tiny(1)
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert any(not torch.equal(sa[k], sc[k]) for k in sa)


def test_null_condition_uses_padding_embedding():
    """All-False mask = every text token replaced by the learned padding embedding: the text content no
    longer matters, while the conditional output depends on it."""
    m = tiny()
    with torch.no_grad():
        m.transformer.to_cond_embed[0].weight.mul_(5)  # make the text path visible at random init
    x, t, tok, mask, sec = inputs()
    null = torch.zeros_like(mask)
    with torch.no_grad():
        u1 = m(x, t, tok, null, sec)
        u2 = m(x, t, torch.randn_like(tok), null, sec)
        c1 = m(x, t, tok, mask, sec)
        c2 = m(x, t, torch.randn_like(tok), mask, sec)
    assert torch.allclose(u1, u2, atol=1e-6)
    assert not torch.allclose(c1, c2, atol=1e-4)


def test_drop_condition_drops_whole_rows():
    mask = torch.ones(2000, 7, dtype=torch.bool)
    out = drop_condition(mask, 0.3, torch.Generator().manual_seed(0))
    rows = out.any(dim=1)
    assert torch.equal(out, rows[:, None].expand_as(out))  # a row is all kept or all dropped
    assert 0.25 < (~rows).float().mean().item() < 0.35
    assert torch.equal(drop_condition(mask, 0.0, torch.Generator()), mask)
    assert not drop_condition(mask, 1.0, torch.Generator()).any()
    # the same generator seed gives the same rows
    again = drop_condition(mask, 0.3, torch.Generator().manual_seed(0))
    assert torch.equal(out, again)


def test_save_and_load_base_roundtrip(tmp_path: Path):
    m = tiny(3)
    save_base(m, tmp_path)
    for f in ("transformer/config.json", "transformer/diffusion_pytorch_model.safetensors",
              "duration_embedder/config.json", "duration_embedder/diffusion_pytorch_model.safetensors"):
        assert (tmp_path / f).exists(), f
    back = load_base(tmp_path)
    x, t, tok, mask, sec = inputs()
    with torch.no_grad():
        assert torch.equal(m(x, t, tok, mask, sec), back(x, t, tok, mask, sec))


def test_load_base_missing_names_directory_and_files(tmp_path: Path):
    missing = tmp_path / "no_such_sa3"
    with pytest.raises(FileNotFoundError) as e:
        load_base(missing)
    msg = str(e.value)
    assert str(missing) in msg
    for f in ("transformer/config.json", "transformer/diffusion_pytorch_model.safetensors",
              "duration_embedder/config.json"):
        assert f in msg
    # a half-written directory names only what is absent
    tiny().transformer.save_pretrained(tmp_path / "half" / "transformer")
    with pytest.raises(FileNotFoundError, match="duration_embedder/config.json") as e2:
        load_base(tmp_path / "half")
    assert "transformer/config.json" not in str(e2.value)
    with pytest.raises(FileNotFoundError, match="vae/config.json"):
        SA3Codec(missing)
    with pytest.raises(FileNotFoundError, match="text_encoder/config.json"):
        SA3TextEncoder(missing)


@pytest.mark.parametrize("kind", ["dora", "lora"])
def test_fresh_adapter_equals_base_and_freezes_it(kind: str):
    m = tiny()
    x, t, tok, mask, sec = inputs()
    with torch.no_grad():
        before = m(x, t, tok, mask, sec)
    n_base = count_parameters(m)["total"]
    add_adapter(m, kind, rank=4, alpha=4, seed=0)
    with torch.no_grad():
        after = m(x, t, tok, mask, sec)
    assert torch.allclose(before, after, atol=1e-6)  # lora_B = 0 at init (peft's default)
    counts = count_parameters(m)
    assert counts["total"] > n_base and 0 < counts["trainable"] == counts["total"] - n_base
    names = [n for n, p in m.named_parameters() if p.requires_grad]
    assert all("lora_" in n for n in names)
    for target in ("self_attn.to_qkv", "self_attn.to_out", "cross_attn.to_q", "cross_attn.to_kv", "cross_attn.to_out",
                   "ff.proj_in", "ff.proj_out"):
        assert any(target in n for n in names), target
    assert any("magnitude" in n for n in names) == (kind == "dora")


def test_adapter_init_is_deterministic_per_seed():
    def a_weights(seed):
        m = add_adapter(tiny(), "dora", 4, 4, seed=seed)
        return {n: p.detach().clone() for n, p in m.named_parameters() if "lora_A" in n}
    w0, w0b, w1 = a_weights(0), a_weights(0), a_weights(1)
    assert all(torch.equal(w0[k], w0b[k]) for k in w0)
    assert any(not torch.equal(w0[k], w1[k]) for k in w0)


def test_dora_saved_and_reloaded_gives_same_outputs(tmp_path: Path):
    base = tiny(5)
    save_base(base, tmp_path / "base")
    m = add_adapter(tiny(5), "dora", rank=4, alpha=8, seed=2)
    with torch.no_grad():  # a trained-looking adapter: non-zero B, changed magnitudes
        for n, p in m.named_parameters():
            if "lora_" in n:
                p.add_(0.05 * torch.randn(p.shape, generator=torch.Generator().manual_seed(len(n))))
    x, t, tok, mask, sec = inputs()
    with torch.no_grad():
        out = m(x, t, tok, mask, sec)
        assert not torch.allclose(out, base(x, t, tok, mask, sec), atol=1e-4)
    save_adapter(m, tmp_path / "ad")
    assert (tmp_path / "ad" / "adapter_model.safetensors").exists() and (tmp_path / "ad" / "adapter_config.json").exists()
    back = load_adapter(load_base(tmp_path / "base"), tmp_path / "ad")
    with torch.no_grad():
        assert torch.equal(out, back(x, t, tok, mask, sec))
    with pytest.raises(FileNotFoundError, match="adapter_config.json"):
        load_adapter(tiny(), tmp_path / "nothing")


def test_tiny_sa3_directory_roundtrip(sa3_standin: Path):
    """The tiny random Stable Audio 3 stand-in (transformer, duration embedder, SAME autoencoder, T5Gemma
    encoder and word-level tokenizer, saved by StableAudio3Pipeline.save_pretrained) loads through the
    real-scale code path, with the same weights diffusers' own pipeline loads."""
    from diffusers import StableAudio3Pipeline

    back = load_base(sa3_standin)
    codec, text = SA3Codec(sa3_standin), SA3TextEncoder(sa3_standin, max_tokens=6)
    assert codec.latent_channels == C and codec.sample_rate == 44100 and text.dim == D and codec.hop == 4096
    lat = codec.encode(torch.randn(2, 5000))
    assert lat.shape == (2, C, codec.frames(5000 / 44100)) == (2, C, 2)
    assert codec.encode(torch.randn(2, 2, 5000)).shape == lat.shape
    assert codec.decode(lat).shape == (2, lat.shape[-1] * codec.hop)
    tok, mask = text.encode(["a calm cello", "harp"])
    assert tok.shape == (2, 6, D) and mask.dtype == torch.bool and mask.sum(1).tolist() == [3, 1]
    with pytest.raises(CaptionTooLong, match="max_tokens = 6"):  # cut silently before
        text.encode(["a calm cello and a slow harp under it", "harp"])
    pipe = StableAudio3Pipeline.from_pretrained(str(sa3_standin))
    ref = EisbachDiT(pipe.transformer, pipe.duration_embedder)
    t, sec = torch.tensor([0.3, 0.7]), torch.full((2,), 5.0)
    with torch.no_grad():
        assert torch.equal(back(lat, t, tok, mask, sec), ref(lat, t, tok, mask, sec))


def test_merged_adapter_is_the_same_function(one_torch_thread):
    """merge_adapter folds a trained-looking DoRA adapter into the weights: the forward pass agrees
    with the unmerged one to float32 rounding (a 2-block net of width 32 on unit-scale inputs:
    relative error ~1e-6 per layer, so 1e-4 absolute is a wide bound that a wrong merge, e.g. one
    that drops the magnitude vector or the scale, exceeds by orders of magnitude)."""
    import torch
    from peft.tuners.lora import LoraLayer

    from eisbach_lib.models import add_adapter, build_base, merge_adapter

    model = add_adapter(build_base(dataclasses.replace(TINY, depth=2), 16, 384, seed=0), "dora", rank=4, alpha=4, seed=0).eval()
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_" in name:  # B = 0 at init would make any merge look right
                p.add_(0.3 * torch.randn(p.shape, generator=g))
        x, t = torch.randn(3, 16, 20, generator=g), torch.tensor([0.2, 0.5, 0.9])
        tokens, mask, seconds = torch.randn(3, 7, 384, generator=g), torch.ones(3, 7, dtype=torch.bool), torch.full((3,), 1.0)
        before = model(x, t, tokens, mask, seconds)
        base_weights = {n: p.clone() for n, p in model.named_parameters() if n.endswith("base_layer.weight")}
        after = merge_adapter(model)(x, t, tokens, mask, seconds)
    layers = [m for m in model.modules() if isinstance(m, LoraLayer)]
    assert layers and all(m.merged for m in layers)  # the forward now runs the base layers alone ...
    assert all(not torch.equal(p, base_weights[n]) for n, p in model.named_parameters() if n in base_weights)  # ... folded
    torch.testing.assert_close(after, before, atol=1e-4, rtol=0)
    assert merge_adapter(model) is model  # merging twice is a no-op
