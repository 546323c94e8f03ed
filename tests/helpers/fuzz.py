"""Bad overrides, generated as a new user would mistype them, and an in-process judge of each.

The cases are drawn with a fixed seed from the leaf keys of `--cfg job` over several group
variants, times value classes: negative, zero, huge, NaN / inf, wrong types, lists, unbalanced
brackets, empty, null, unicode, very long strings, unknown keys and choices, deletions, and
pairs of them. `judge` runs one case through the entry point's own steps (Hydra's override
checks and composition, the schema, the data checks, and building every object) without
training, and says how it ended.
"""

import copy
import random
from dataclasses import dataclass
from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra._internal.config_loader_impl import ConfigLoaderImpl
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import DictConfig, OmegaConf, open_dict

from deeptune import builders
from deeptune.cli import hydra_error
from deeptune.config import CONFIG_DIR, check_group_overrides, validate, validate_against_data
from deeptune.errors import ConfigError
from deeptune.run.fit import assemble

SEED = 2026
VARIANTS = [
    [],
    ["model=rnn", "data=temporal_order", "data.seq_len=6", "data.source.n_samples=200"],
    ["model=rnn", "data=adding", "data.seq_len=6", "data.source.n_samples=200"],
    ["data=moons"],
    ["data=spirals"],
    ["data=classification"],
    ["optimizer=sgd", "scheduler=cosine"],
    ["optimizer=momentum", "scheduler=warmup"],
    ["optimizer=rmsprop", "scheduler=plateau"],
    ["optimizer=adagrad", "scheduler=step"],
    ["optimizer=lbfgs", "scheduler=two_stage"],
    ["optimizer=adamw", "scheduler=exponential"],
    ["logger=tensorboard"],
    ["debug=lr_find"],
    ["debug=overfit"],
    ["experiment=example"],
]
GROUPS = ("model", "data", "optimizer", "scheduler", "trainer", "callbacks", "logger", "debug")
VALUES = {  # class -> the override texts a user might type
    "negative": ["-1", "-3.5", "-1e9"],
    "zero": ["0", "0.0"],
    "huge": ["1000000000000", "1e300", "9" * 400],
    "nan": ["nan", "inf", "-inf"],
    "wrong type": ["abc", "true", "{a:1}", "[1,2]"],
    "list": ["[]", "[a,b]", "[0.5]"],
    "unbalanced": ["[1,2", "{a:1", "'abc"],
    "empty": [""],
    "null": ["null"],
    "unicode": ["ünïcødé", "日本語", "🙂"],
    "long string": ["x" * 3000],
}
# Classes that no numeric or boolean knob accepts (the oracle of `must_fail`).
NOT_A_NUMBER = {"nan", "wrong type", "unbalanced", "empty", "unicode", "long string"}
LISTS_ALLOWED = {"model.width", "trainer.devices", "tags", "finetune.freeze"}


@dataclass
class Case:
    overrides: list[str]  # the variant's, then the bad ones
    kinds: list[str]  # the value class of each bad override
    must_fail: bool  # an override no config of deeptune accepts

    @property
    def bad(self) -> list[str]:
        return self.overrides[len(self.overrides) - len(self.kinds) :]


@dataclass
class Outcome:
    ok: bool
    message: str = ""  # the one line the user sees
    key: str | None = None  # the key it names
    crash: str | None = None  # an exception that would have been a raw traceback


def _leaves(node, prefix=""):
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _leaves(value, f"{prefix}{key}.")
    else:
        yield prefix[:-1], node


def variant_keys() -> list[tuple[list[str], dict]]:
    """(variant overrides, {leaf key: value}) for each variant, from `--cfg job`'s config."""
    out = []
    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
        for variant in VARIANTS:
            cfg = compose("train", overrides=variant)
            out.append((variant, dict(_leaves(OmegaConf.to_container(cfg, resolve=False)))))
    return out


def cases(n: int = 330, seed: int = SEED) -> list[Case]:
    """`n` cases, the same ones for the same seed: about one in five is a pair."""
    rng = random.Random(seed)
    variants = variant_keys()
    found = []
    while len(found) < n:
        variant, keys = rng.choice(variants)
        bad = [_bad(rng, keys) for _ in range(2 if rng.random() < 0.2 else 1)]
        if len({b[0].split("=")[0] for b in bad}) < len(bad):
            continue  # the same key twice
        overrides = [*variant, *(b[0] for b in bad)]
        found.append(Case(overrides, [b[1] for b in bad], any(b[2] for b in bad)))
    return found


def _bad(rng: random.Random, keys: dict) -> tuple[str, str, bool]:
    """(override, class, must it fail)."""
    roll = rng.random()
    key = rng.choice(sorted(keys))
    if roll < 0.06:
        parent, _, leaf = key.rpartition(".")
        typo = leaf[:-1] + "x" if len(leaf) > 2 else leaf + "x"
        plus = rng.random() < 0.5
        return f"{'+' if plus else ''}{parent + '.' if parent else ''}{typo}=1", "unknown key", True
    if roll < 0.1:
        group = rng.choice(GROUPS)
        return f"{group}={rng.choice(['adamm', 'mlpp', 'nonee', 'foo'])}", "unknown choice", True
    if roll < 0.13:
        return f"~{key}", "delete", False
    kind = rng.choice(sorted(VALUES))
    value = rng.choice(VALUES[kind])
    original = keys[key]
    numeric = isinstance(original, (int, float)) and not isinstance(original, str)
    must = kind == "unbalanced"
    if isinstance(original, bool):  # strict: only true and false (and null, where allowed)
        must |= value not in ("true", "null")
    elif numeric and key not in LISTS_ALLOWED:
        must |= kind in NOT_A_NUMBER or kind == "list"
        must |= kind == "huge" and (value == "9" * 400 or not isinstance(original, float))
    return f"{key}={value}", kind, must


def judge(case: Case, out_dir: Path) -> Outcome:
    """The case through everything that comes before training."""
    try:
        check_group_overrides(case.overrides)
        try:
            cfg = composed(case.overrides)
        except Exception as err:  # Hydra's own: the entry point reports it in one line
            line = hydra_error(err, case.overrides)
            return Outcome(False, line, _named(line, case))
        _place(cfg, out_dir)
        validate(cfg)
        table = builders.source(cfg)
        validate_against_data(cfg, table)
        assemble(cfg, table)
        return Outcome(True)
    except ConfigError as err:
        return Outcome(False, str(err), err.key)
    except Exception as err:
        return Outcome(False, crash=f"{type(err).__name__}: {err}"[:500])


_COMPOSED: dict[tuple[str, ...], DictConfig] = {}


def composed(overrides: list[str]) -> DictConfig:
    """What Hydra composes for `overrides`, by Hydra's own two steps: the defaults list with the
    group overrides (composed once per distinct set, then copied: composing reads every YAML
    file again, ~0.2 s), then the value overrides applied to the copy as Hydra applies them."""
    parsed = OverridesParser.create().parse_overrides(overrides)
    groups = [
        o
        for o in parsed
        if (CONFIG_DIR / o.key_or_group).is_dir() and not isinstance(o.value(), dict)
    ]
    values = [o for o in parsed if o not in groups]
    key = tuple(o.input_line for o in groups)
    if key not in _COMPOSED:
        with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
            _COMPOSED[key] = compose("train", overrides=list(key))
    cfg = copy.deepcopy(_COMPOSED[key])
    ConfigLoaderImpl._apply_overrides_to_config(values, cfg)
    return cfg


def _place(cfg: DictConfig, out_dir: Path) -> None:
    """Stand in for Hydra's runtime, which compose does not set: paths.* still pointing at it
    (`${hydra:...}`) get the case's folder; an override of them stays as the user typed it."""
    paths = cfg.get("paths")
    if not isinstance(paths, DictConfig):
        return
    with open_dict(cfg):
        for key in ("output_dir", "root_dir"):
            raw = OmegaConf.to_container(paths, resolve=False).get(key)
            if isinstance(raw, str) and raw.startswith("${hydra:"):
                paths[key] = str(out_dir)


def _named(line: str, case: Case) -> str | None:
    """The key of a bad override that the line names."""
    for override in case.bad:
        key = override.split("=")[0].lstrip("+~")
        if key in line:
            return key
    return None
