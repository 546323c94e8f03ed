"""Text in a table: `data=text data.path=<file.csv|file.parquet>`.

A text column and a label column, read with pandas; a Hugging Face `tokenizers` tokenizer is
trained on the training split only (so val / test words it never saw become [UNK]), and every
text is encoded once to `max_length` token ids with an attention mask (True = a real token).

BPE is the default: its training is repeatable run to run, so restarts and the folds of a
cross-validation share one vocabulary. WordPiece is not offered: its trainer assigns the ids of
its ##-subwords in hash-map order, a different vocabulary each process (tokenizers issue #1794).
"""

from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from deeptune import extras
from deeptune.data.loaders import LoaderDataModule, fitted, targets
from deeptune.errors import ConfigError

PAD, UNK = "[PAD]", "[UNK]"  # ids 0 and 1
TABLES = {".csv": "read_csv", ".parquet": "read_parquet", ".pq": "read_parquet"}


def read_table(path, key: str = "data.path"):
    import pandas as pd

    path = Path(path).expanduser()
    reader = TABLES.get(path.suffix.lower())
    if reader is None:
        raise ConfigError(key, str(path), f"a table needs one of the suffixes {', '.join(TABLES)}")
    if not path.is_file():
        raise ConfigError(key, str(path), "no such file")
    if reader == "read_parquet":
        extras.require("parquet", key, str(path), "reading Parquet")
    return getattr(pd, reader)(path)


def column(frame, name: str, key: str):
    if name not in frame.columns:
        raise ConfigError(key, name, f"no such column; the table has {list(frame.columns)}")
    return frame[name]


def train_tokenizer(texts, kind: str, vocab_size: int, max_length: int, lowercase: bool):
    """A tokenizer fitted on `texts`, padding and truncating every text to `max_length`."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers

    model, trainer = {
        "bpe": (models.BPE, trainers.BpeTrainer),
        "wordlevel": (models.WordLevel, trainers.WordLevelTrainer),
    }[kind]
    tokenizer = Tokenizer(model(unk_token=UNK))
    steps = [normalizers.NFKC()] + ([normalizers.Lowercase()] if lowercase else [])
    tokenizer.normalizer = normalizers.Sequence(steps)
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    fit = trainer(vocab_size=vocab_size, special_tokens=[PAD, UNK], show_progress=False)
    tokenizer.train_from_iterator(texts, fit)
    tokenizer.enable_padding(pad_id=tokenizer.token_to_id(PAD), pad_token=PAD, length=max_length)
    tokenizer.enable_truncation(max_length)
    return tokenizer


def encode(tokenizer, texts) -> dict[str, torch.Tensor]:
    encodings = tokenizer.encode_batch([str(t) for t in texts])
    ids = torch.tensor([e.ids for e in encodings], dtype=torch.long)
    mask = torch.tensor([e.attention_mask for e in encodings], dtype=torch.bool)
    return {"input_ids": ids, "attention_mask": mask}


class TokenSet(Dataset):
    def __init__(self, x: dict[str, torch.Tensor], y: torch.Tensor):
        self.x, self.y = x, y

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        return {k: v[i] for k, v in self.x.items()}, self.y[i]

    def __getitems__(self, keys):
        idx = torch.as_tensor(list(keys))
        return {k: v[idx] for k, v in self.x.items()}, self.y[idx]


class TextDataModule(LoaderDataModule):
    def __init__(
        self,
        path: str,
        text_column: str = "text",
        label_column: str = "label",
        task: str = "classification",
        tokenizer: str = "bpe",
        vocab_size: int = 8000,
        max_length: int = 128,
        lowercase: bool = True,
        standardize: bool = False,
        **common,
    ):
        super().__init__(**common)
        if standardize:  # train.yaml's shared key; configs/data/text.yaml turns it off
            raise ConfigError("data.standardize", True, "token ids are not standardised")
        self.path, self.text_column, self.label_column = path, text_column, label_column
        self.task, self.kind, self.lowercase = task, tokenizer, lowercase
        self.max_vocab, self.max_length = vocab_size, max_length
        self.tokenizer = None

    @property
    def input_shape(self) -> tuple[int, ...]:
        return (self.max_length,)

    @property
    def vocab_size(self) -> int | None:
        """The trained tokenizer's vocabulary (at most data.vocab_size), specials included."""
        return self.tokenizer.get_vocab_size() if self.tokenizer else None

    def _read(self):
        frame = read_table(self.path)
        self.texts = column(frame, self.text_column, "data.text_column").fillna("").astype(str)
        labels = column(frame, self.label_column, "data.label_column")
        if labels.isna().any():
            raise ConfigError("data.label_column", self.label_column, "has missing labels")
        self.y, self.classes = targets(labels.to_numpy(), self.task, "data.label_column")
        return self.y.numpy(), {}

    def _datasets(self, indices):
        if self.tokenizer is None:  # fitted on the training texts only
            from tokenizers import Tokenizer

            train = indices["train"]
            params = (self.text_column, self.kind, self.max_vocab, self.max_length, self.lowercase)
            texts = self.texts.iloc[train].tolist()
            saved = fitted(
                "text",
                [self.path],
                train,
                params,
                lambda: train_tokenizer(texts, *params[1:]).to_str(),
            )
            self.tokenizer = Tokenizer.from_str(saved)
        x = encode(self.tokenizer, self.texts.tolist())
        return {
            name: TokenSet({k: v[torch.from_numpy(i)] for k, v in x.items()}, self.y[i])
            for name, i in indices.items()
        }

    def state_dict(self) -> dict:
        return {
            "tokenizer": self.tokenizer.to_str() if self.tokenizer else None,
            "max_length": self.max_length,
            "classes": list(self.classes),
        }

    def load_state_dict(self, state: dict) -> None:
        from tokenizers import Tokenizer

        self.max_length, self.classes = state["max_length"], list(state["classes"])
        saved = state["tokenizer"]
        if saved and (self.tokenizer is None or self.tokenizer.to_str() != saved):
            self.tokenizer = Tokenizer.from_str(saved)
            if self.indices is not None:  # set up with another vocabulary: encode again
                self.datasets = self._datasets(self.indices)

    def predict_inputs(self, raw) -> dict[str, torch.Tensor]:
        """Strings (a list, or one), or a .csv / .parquet file's `data.text_column`, encoded by
        the trained tokenizer."""
        table = isinstance(raw, (str, Path)) and Path(raw).suffix.lower() in TABLES
        if table and Path(raw).expanduser().is_file():
            raw = column(read_table(raw, "input"), self.text_column, "data.text_column")
        if isinstance(raw, str):
            raw = [raw]
        texts = ["" if t is None or t != t else t for t in np.asarray(raw, dtype=object)]
        return encode(self.tokenizer, texts)
