"""Small networks for the tests of data modules deeptune has no model for yet."""

from torch import nn


class TokenBag(nn.Module):
    """Token ids -> the mean of their embeddings over the real tokens -> a linear head: enough to
    tell two vocabularies apart (the text data module's tests)."""

    def __init__(self, input_shape, outputs, vocab_size, dim=16):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, dim, padding_idx=0)
        self.hidden = nn.ModuleList([nn.Sequential(nn.Linear(dim, dim), nn.ReLU())])
        self.head = nn.Linear(dim, outputs)

    def forward(self, x):
        mask = x["attention_mask"].unsqueeze(-1).float()
        mean = (self.embed(x["input_ids"]) * mask).sum(1) / mask.sum(1).clamp_min(1)
        return self.head(self.hidden[0](mean))
