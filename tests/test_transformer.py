"""The Transformer encoder (model=transformer): inputs, masks, every block choice, training."""

import json
from pathlib import Path

import pytest
import torch
from torch import nn

from deeptune.config import validate
from deeptune.errors import ConfigError
from deeptune.models.choices import (
    NORM_POSITIONS,
    POOLINGS,
    POSITIONS,
    TRANSFORMER_ACTIVATIONS,
    TRANSFORMER_NORMS,
)
from deeptune.models.transformer import Transformer, sinusoidal
from deeptune.train import train

SMALL = {"depth": 2, "width": 16, "heads": 2, "ff_mult": 2}


@pytest.mark.parametrize("norm_position", NORM_POSITIONS)
@pytest.mark.parametrize("norm", TRANSFORMER_NORMS)
@pytest.mark.parametrize("activation", TRANSFORMER_ACTIVATIONS)
def test_every_block_choice_builds_and_runs(activation, norm, norm_position):
    net = Transformer(
        [10, 3], 4, activation=activation, norm=norm, norm_position=norm_position, **SMALL
    )
    x = torch.randn(5, 10, 3)
    assert net(x).shape == (5, 4)
    block = net.hidden[0]
    assert isinstance(block, nn.TransformerEncoderLayer) and block.norm_first == (
        norm_position == "pre"
    )
    norm_class = nn.RMSNorm if norm == "rms" else nn.LayerNorm
    assert isinstance(block.norm1, norm_class) and isinstance(block.norm2, norm_class)
    gated = activation in ("geglu", "swiglu")
    assert block.linear2.in_features == 32  # ff_mult * width
    assert block.linear1.out_features == (2 if gated else 1) * 32
    with torch.no_grad():  # torch's fused inference path where it applies, the module's elsewhere
        assert net.eval()(x).shape == (5, 4)


@pytest.mark.parametrize("pooling", POOLINGS)
@pytest.mark.parametrize("position", POSITIONS)
def test_positions_and_pooling(position, pooling):
    net = Transformer([12], 2, position=position, pooling=pooling, **SMALL)
    assert net(torch.randn(3, 12)).shape == (3, 2)  # a flat table: 12 steps of one value
    steps = 13 if pooling == "cls" else 12
    assert net.inputs.position.shape == (1, steps, 16)
    learned = "inputs.position" in dict(net.named_parameters())
    assert learned == (position == "learned")
    assert ("inputs.position" in net.state_dict()) == learned  # sinusoidal: rebuilt, not saved


def test_sinusoidal_positions_are_the_classic_table():
    table = sinusoidal(5, 6)
    assert table[0].tolist() == pytest.approx([0, 1, 0, 1, 0, 1])
    assert table[3, 0] == pytest.approx(torch.sin(torch.tensor(3.0)))
    assert table[3, 3] == pytest.approx(torch.cos(torch.tensor(3.0 / 10_000 ** (2 / 6))))


@pytest.mark.parametrize("pooling", POOLINGS)
def test_padding_changes_nothing(pooling):
    torch.manual_seed(0)
    net = Transformer([12], 3, vocab_size=50, pooling=pooling, dropout=0.1, **SMALL).eval()
    ids = torch.randint(1, 50, (2, 12))
    mask = torch.ones(2, 12, dtype=torch.bool)
    mask[0, 7:] = False  # the first sequence has 7 real tokens, then padding
    out = net({"input_ids": ids, "attention_mask": mask})
    other_padding = ids.clone()
    other_padding[0, 7:] = torch.randint(1, 50, (5,))
    torch.testing.assert_close(net({"input_ids": other_padding, "attention_mask": mask}), out)
    unpadded = net({"input_ids": ids[:1, :7]})  # no mask: every token is real
    torch.testing.assert_close(unpadded[0], out[0], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(net(ids[1:]), out[1:], atol=1e-5, rtol=1e-5)  # a LongTensor
    with torch.enable_grad():  # the module path (training) masks the same way
        net.train()
        torch.manual_seed(1)
        a = net({"input_ids": ids, "attention_mask": mask})
        torch.manual_seed(1)
        b = net({"input_ids": other_padding, "attention_mask": mask})
    torch.testing.assert_close(a, b)


def test_token_ids_are_embedded_and_too_long_sequences_refused():
    net = Transformer([8], 2, vocab_size=30, **SMALL)
    assert isinstance(net.inputs.embed, nn.Embedding) and net.inputs.embed.num_embeddings == 30
    with pytest.raises(ValueError, match="the model reads <= 8"):
        net(torch.randint(0, 30, (2, 9)))
    assert isinstance(Transformer([8, 4], 2, **SMALL).inputs.embed, nn.Linear)


def test_the_schema_refuses_what_cannot_work(train_cfg):
    cases = {
        "model.width=30 model.heads=4": "model.heads=4 is invalid: must divide model.width=30",
        "model.activation=tanh": "model.activation='tanh' is invalid",
        "model.norm=batch": "model.norm='batch' is invalid",
        "model.norm_position=middle": "model.norm_position='middle' is invalid",
        "model.position=rotary": "model.position='rotary' is invalid",
        "model.pooling=max": "model.pooling='max' is invalid",
    }
    for override, message in cases.items():
        with pytest.raises(ConfigError, match=message):
            validate(train_cfg("model=transformer", *override.split()))
    with pytest.raises(ConfigError, match=r"model='Transformer' is invalid: data=digits_images"):
        train(train_cfg("model=transformer", "data=digits_images", out="images"))


def test_transformer_trains_on_sequences_and_freezes_its_blocks(train_cfg):
    tiny = ["model=transformer", "model.width=16", "model.heads=2", "model.depth=2"]
    cfg = train_cfg(*tiny, "data=adding", "data.seq_len=8", "data.source.n_samples=300")
    train(cfg)
    metrics = json.loads((Path(cfg.paths.output_dir) / "metrics.json").read_text())
    layers = metrics["grad_health"]["layers"]
    assert layers == ["inputs", "hidden.0", "hidden.1", "norm", "head"]
    frozen = train_cfg(
        *tiny,
        "data=temporal_order",
        "data.seq_len=8",
        "data.source.n_samples=300",
        "finetune.freeze=[1]",
        "model.activation=swiglu",
        "model.norm=rms",
        "model.pooling=mean",
        out="frozen",
    )
    assert train(frozen) > 0.0
