"""The schema is declared once, beside the code it configures: each node model against its
target's signature, the named choices against the code, and the one-line messages it gives."""

import inspect

import pytest
from hydra.utils import get_object

from deeptune import config  # noqa: F401  (imports every area's schema)
from deeptune.data.schema import DataNode
from deeptune.models.choices import ACTIVATIONS, INITS, NORMS
from deeptune.models.rnn import CELLS
from deeptune.models.schema import MLPNode, RNNNode
from deeptune.schema import HYDRA_KEYS, SCHEMAS, describe
from deeptune.tasks import TASKS

# Arguments the builders pass themselves, never config keys.
INJECTED = {
    "self", "params", "optimizer", "input_shape", "outputs", "fold", "callbacks", "logger",
}  # fmt: skip
NET_INJECTED = {"vocab_size"}  # a network's, from a data module of token ids; data=text's own key


def _fields(model) -> set[str]:
    names = {info.alias or name for name, info in model.model_fields.items()}
    return names - HYDRA_KEYS - set(model.BUILDER_KEYS)


def _parameters(target) -> tuple[set[str], bool]:
    """The target's named arguments and whether it takes **kwargs; a class whose **kwargs go to
    its base class (deeptune's LBFGS to torch's) takes the base's arguments too."""
    named: set[str] = set()
    own_kwargs = None
    for owner in inspect.getmro(target) if inspect.isclass(target) else [target]:
        if inspect.isclass(owner) and "__init__" not in vars(owner):
            continue
        params = inspect.signature(owner).parameters.values()
        named |= {p.name for p in params if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}
        kwargs = any(p.kind is p.VAR_KEYWORD for p in params)
        own_kwargs = kwargs if own_kwargs is None else own_kwargs
        if not kwargs or not inspect.isclass(target):
            break
    return named - INJECTED, bool(own_kwargs)


@pytest.mark.parametrize("target", sorted(SCHEMAS))
def test_every_node_model_matches_its_target(target):
    """A closed model (extra keys refused before torch loads) lists exactly the target's
    arguments; an open one types some of them and leaves the rest to the target's signature."""
    model, obj = SCHEMAS[target], get_object(target)
    taken, open_ended = _parameters(obj)
    if target.startswith("deeptune.models."):
        taken -= NET_INJECTED
    if model.model_config.get("extra") == "allow":
        assert open_ended or target.endswith("batch_scaled"), f"{target} is closed: close it"
        missing = _fields(model) - taken
        # batch_scaled passes its **kwargs to torch.optim.SGD, whose arguments it types
        assert not missing or target.endswith(("batch_scaled", "WandbLogger")), missing
    else:
        assert _fields(model) == taken, _fields(model) ^ taken


def test_named_choices_match_the_code():
    def literal(model, field):
        return describe(model.model_fields[field].annotation)

    assert literal(MLPNode, "activation") == "one of " + ", ".join(ACTIVATIONS)
    assert literal(MLPNode, "norm") == "one of " + ", ".join(NORMS)
    assert literal(MLPNode, "init") == "one of " + ", ".join(INITS)
    assert literal(RNNNode, "cell") == "one of " + ", ".join(CELLS)


def test_every_task_metric_is_a_torchmetrics_class():
    for task in TASKS.values():
        for metric in task.metrics:
            assert inspect.isclass(get_object(metric.metric)), metric
        assert task.names[-1] == "loss" and task.headline == task.metrics[0].name


def test_descriptions():
    fields = MLPNode.model_fields
    assert (
        describe(fields["depth"].annotation, fields["depth"].metadata)
        == "an integer >= 1 and <= 10000"
    )
    assert describe(fields["width"].annotation).endswith("(or a list of them)")
    fraction = DataNode.model_fields["val_fraction"]
    assert describe(fraction.annotation, fraction.metadata) == "a number > 0 and < 1"
    threads = describe(config.TrainConfig.model_fields["threads"].annotation)
    assert threads == "an integer >= 1 and <= 4096, or auto, or null"
