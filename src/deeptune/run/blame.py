"""Which config node an exception came from: the object built from that node that was running
(`self` in the innermost frame that belongs to one) when it was raised.

No library maps a traceback back to configuration, so this is written here; it lets the safety
net in deeptune.cli name `optimizer` or `callbacks.grad_health` instead of "something in fit".
"""

from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress

from deeptune.errors import ConfigError, TrainingError

Owner = tuple[Callable[[object], bool], str]  # (is this object the node's?, node key)
_COMPILER = ("torch._dynamo", "torch._inductor", "torch._functorch")


def owners(parts, cfg) -> list[Owner]:
    """The objects of one fit (deeptune.run.fit.Parts), innermost first."""
    import torch

    net_modules = {id(m) for m in parts.model.net.modules()}
    found: list[Owner] = []
    if cfg.model.get("compile"):  # torch.compile's own frames: no compiler, an op it cannot take
        found.append((lambda o: type(o).__module__.startswith(_COMPILER), "model.compile"))
    found += [
        (lambda o: id(o) in net_modules, "model"),
        (lambda o: isinstance(o, torch.optim.Optimizer), "optimizer"),
        (lambda o: isinstance(o, (torch.optim.lr_scheduler.LRScheduler,
                                  torch.optim.lr_scheduler.ReduceLROnPlateau)), "scheduler"),
    ]  # fmt: skip
    found += [(_is(cb), f"callbacks.{name}") for name, cb in parts.callbacks.items()]
    found += [(_is(lg), f"logger.{name}") for name, lg in parts.loggers.items()]
    found += [(_is(parts.datamodule), "data"), (_is(parts.model), "model")]
    # The data module's batches are made by objects it creates each epoch.
    found.append((lambda o: type(o).__module__.startswith("deeptune.data"), "data"))
    # Last: Lightning's own loops, which run everything the trainer's arguments set up.
    found.append((lambda o: type(o).__module__.startswith("lightning.pytorch"), "trainer"))
    return found


def _is(owned) -> Callable[[object], bool]:
    return lambda o: o is owned


def node_of(err: BaseException, found: list[Owner]) -> str | None:
    frames = []
    tb = err.__traceback__
    while tb is not None:
        frames.append(tb.tb_frame)
        tb = tb.tb_next
    for frame in reversed(frames):  # innermost first
        me = frame.f_locals.get("self")
        if me is None:
            continue
        for belongs, key in found:
            if belongs(me):
                return key
    return None


@contextmanager
def blamed(found: list[Owner]) -> Iterator[None]:
    """Tag an unexpected exception with the node it came from (`err.config_node`)."""
    try:
        yield
    except Exception as err:
        if not isinstance(err, (ConfigError, TrainingError)) and not hasattr(err, "config_node"):
            with suppress(AttributeError):  # an exception type that takes no attributes
                err.config_node = node_of(err, found)
        raise
