"""configs/cpu.yaml holds the cpu profile's design (docs/design.md §6)."""

import pandas as pd

from eisbach_lib.config import CONFIGS, load_profile
from eisbach_lib.generate import CARD_PROMPTS
from eisbach_lib.text import token_counts

CONTROLS = {"none", "eisbach", "eisbach_norm", "eisbach_shuffle", "oracle_texture", "constant"}


def test_cpu_profile_has_the_power_design():
    cfg = load_profile("cpu")
    ft, gen = cfg.finetune, cfg.generate
    assert len(set(ft.seeds)) >= 8
    assert CONTROLS <= set(ft.arms)
    assert gen.heldout_prompts >= 12 and gen.card_prompts and gen.samples_per_prompt >= 8
    assert "finetune_prompts" not in (CONFIGS / "cpu.yaml").read_text()  # the old name (captions of the training split)


def test_cpu_profile_checkpoints_serve_the_claim_c10():
    cfg = load_profile("cpu")
    ft = cfg.finetune
    assert ft.sweet_spot in ft.checkpoint_steps and ft.sweet_spot < ft.steps
    assert max(ft.checkpoints) <= ft.steps
    assert {"none", "eisbach"} <= set(cfg.generate.checkpoint_arms or ft.arms)


def test_cpu_profile_max_tokens_holds_the_card_prompts():
    cfg = load_profile("cpu")
    longest = max(token_counts(list(pd.read_csv(CARD_PROMPTS)["prompt"])))
    assert cfg.text.max_tokens >= longest
