"""The config schema's building blocks: value types with their ranges, the node models and the
registry that maps a `_target_` to the model of its arguments.

pydantic checks the values (types, ranges, unknown keys); this module turns its errors into
deeptune's one-line `ConfigError`s, naming the dotted key, the value and what is allowed. Each
area declares the models of what it builds in its own torch-free `schema.py`
(`deeptune/models/schema.py` for the networks, `deeptune/optim/schema.py` for optimisers and
schedules, ...), and `deeptune.config` walks a composed config through them.
"""

import difflib
import types
import typing
from typing import Annotated, Any, ClassVar, Literal

import annotated_types as at
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

from deeptune.errors import ConfigError

MAX_INT = 2**31 - 1  # bigger counts are typos, and torch and numpy cannot hold them all
MAX_SEED = 2**32 - 1  # numpy's and Lightning's seed range


class Allowed:
    """Annotated metadata: the 'what is allowed' text of a type whose rule is not a range."""

    def __init__(self, text: str):
        self.text = text


class Required(Allowed):
    """Annotated metadata: what to do when a required key is missing."""


def Int(ge: int | None = None, le: int = MAX_INT, gt: int | None = None):  # noqa: N802
    return Annotated[int, Field(ge=ge, le=le, gt=gt)]


def Float(  # noqa: N802
    ge: float | None = None,
    gt: float | None = None,
    le: float | None = None,
    lt: float | None = None,
):
    """A finite number (an integer is a number too) within the bounds."""
    return Annotated[float, Field(ge=ge, gt=gt, le=le, lt=lt, allow_inf_nan=False)]


PosInt = Int(ge=1)
NonNegInt = Int(ge=0)
Seed = Int(ge=0, le=MAX_SEED)
Fraction = Float(gt=0, lt=1)  # strictly between 0 and 1
Probability = Float(ge=0, lt=1)  # e.g. a dropout rate
NonNegFloat = Float(ge=0)
PosFloat = Float(gt=0)


def _name(value: str) -> str:
    if not value or len(value) > 128 or value in (".", "..") or any(c in value for c in "/\\"):
        raise ValueError("not a name")
    if not value.isprintable():
        raise ValueError("not a name")
    return value


def _text(value: str) -> str:
    if len(value) > 4096 or not value.isprintable():
        raise ValueError("not printable text")
    return value


def _label(value: str) -> str:
    if len(value) > 128 or not value.isprintable():
        raise ValueError("not a label")
    return value


def _path(value: str) -> str:
    # 255 bytes per file or folder name is what Linux, macOS and Windows file systems allow
    if len(value) > 4096 or not value.isprintable():
        raise ValueError("not a path")
    if any(len(part.encode()) > 255 for part in value.replace("\\", "/").split("/")):
        raise ValueError("not a path")
    return value


# A file or folder name (a checkpoint's filename, a logger's name): never a path, never `..`.
Name = Annotated[
    str,
    AfterValidator(_name),
    Allowed("a name (no '/', '\\' or '..', at most 128 printable characters)"),
]
Text = Annotated[str, AfterValidator(_text), Allowed("printable text")]
# A run's display name, group or tag: trackers cut or refuse longer ones (W&B: 128).
Label = Annotated[str, AfterValidator(_label), Allowed("printable text of at most 128 characters")]
Path = Annotated[
    str, AfterValidator(_path), Allowed("a path (names of at most 255 characters each)")
]


def _metric_key(value: str) -> str:
    split, _, name = value.partition("/")
    if split not in ("train", "val") or not name.isidentifier():
        raise ValueError("not a metric")
    return value


# What checkpoints, early stopping, schedules and sweeps may watch: a metric logged during fit.
MetricKey = Annotated[
    str,
    AfterValidator(_metric_key),
    Allowed("a metric logged during training, <train|val>/<name>, e.g. val/acc"),
]
Target = Annotated[
    str,
    Field(pattern=r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$"),
    Allowed("a dotted path to a class or function, e.g. torch.optim.Adam"),
]


class Section(BaseModel):
    """Plain keys (`cv`, `report`, ...): every key declared, values checked strictly (3.0 is not
    an integer, "yes" is not a boolean, NaN and inf are not numbers)."""

    # defer_build: a model is compiled when a config first uses it, so the ~60 node models cost
    # no start-up time (a config error is reported in about a second).
    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False, defer_build=True)

    def check(self, key: str) -> None:
        """Rules across this node's keys; raise ConfigError naming the full key."""


class Node(Section):
    """A node that hydra.utils.instantiate builds: `_target_`, Hydra's flags, the target's
    arguments. A node whose model forbids extra keys lists every argument the target takes
    (tests/test_schema.py holds each to the target's signature); an open one (extra='allow')
    types the known arguments and leaves the rest to the target's signature at build time."""

    model_config = ConfigDict(populate_by_name=True)
    # Keys deeptune's builder takes off the node and acts on itself (`model.compile`,
    # `trainer.float32_matmul_precision`): checked here, never passed to the target.
    BUILDER_KEYS: ClassVar[tuple[str, ...]] = ()

    target_: Target = Field(alias="_target_")
    # Absent is fine; Hydra refuses an explicit null (the default is not validated).
    partial_: bool = Field(None, alias="_partial_")
    recursive_: bool = Field(None, alias="_recursive_")
    convert_: Literal["none", "partial", "object", "all"] | None = Field(None, alias="_convert_")
    args_: list | None = Field(None, alias="_args_")


class OpenNode(Node):
    """A target deeptune has no model for (your own class, or another library's)."""

    model_config = ConfigDict(extra="allow")


HYDRA_KEYS = {f.alias for f in Node.model_fields.values()}
SCHEMAS: dict[str, type[Node]] = {}


def schema(*targets: str):
    """Register a Node model as the schema of each `_target_` path."""

    def register(cls: type[Node]) -> type[Node]:
        for target in targets:
            SCHEMAS[target] = cls
        return cls

    return register


def schema_for(target) -> type[Node]:
    return SCHEMAS.get(target, OpenNode) if isinstance(target, str) else Node


# ---------------------------------------------------------------------------------------------
# pydantic's errors -> one ConfigError


def check_model(model: type[Section], values: dict, key: str, what: str | None = None):
    """`model.model_validate(values)`, or the first error as a ConfigError at `key`.<field>."""
    try:
        return model.model_validate(values)
    except ValidationError as err:
        raise to_config_error(err, model, values, key, what) from None


def to_config_error(
    err: ValidationError, model: type[Section], values: dict, prefix: str, what: str | None
) -> ConfigError:
    first = err.errors()[0]
    fields, cls, value, node = [], model, values, values
    for part in first["loc"]:  # field names, then union tags or list indices
        if cls is None or not isinstance(part, str):
            break
        info = _field(cls, part)
        if info is None:
            fields.append(part)
            value = node.get(part) if isinstance(node, dict) else None
            break
        fields.append(part)
        value = node.get(part) if isinstance(node, dict) else None
        node = value
        inner = _model_of(info.annotation)
        if inner is None:
            key = _join(prefix, fields)
            return ConfigError(key, value, _allowed(first, info, key))
        cls = inner
    key = _join(prefix, fields)
    if first["type"] == "extra_forbidden":
        known = [f.alias or n for n, f in cls.model_fields.items()] if cls else []
        known = [k for k in known if k not in HYDRA_KEYS]
        return ConfigError(key, value, _unknown(key, known, what or cls.__name__))
    if first["type"] == "missing":
        return ConfigError(key, None, f"required: set it, e.g. {key}=<value>")
    return ConfigError(key, value, first["msg"])


def _join(prefix: str, fields: list[str]) -> str:
    return ".".join(p for p in (prefix, *fields) if p)


def _field(cls: type[BaseModel], name: str):
    for field_name, info in cls.model_fields.items():
        if name in (field_name, info.alias):
            return info
    return None


def _model_of(annotation) -> type[BaseModel] | None:
    """The model of a nested section (`cv: CrossValidation` or `CrossValidation | None`)."""
    for member in _members(annotation):
        if isinstance(member, type) and issubclass(member, BaseModel):
            return member
    return None


def _unknown(key: str, known: list[str], what: str) -> str:
    where, _, name = key.rpartition(".")
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
    if close:
        return f"not a key of {what}; did you mean {where + '.' if where else ''}{close[0]}?"
    shown = ", ".join(known[:12]) + (", ..." if len(known) > 12 else "")
    return f"not a key of {what}, which takes {shown}"


def _allowed(error: dict, info, key: str) -> str:
    if error["type"] == "missing":
        hints = [m.text for m in info.metadata if isinstance(m, Required)]
        return "required: " + (hints[0] if hints else f"set it, e.g. {key}=<value>")
    text = f"must be {describe(info.annotation, info.metadata)}"
    limit = (error.get("ctx") or {}).get("le")
    if error["type"] == "less_than_equal" and limit in (MAX_INT, MAX_SEED):
        text += f" (at most {limit})"  # the silent upper bound of every count
    return text


# ---------------------------------------------------------------------------------------------
# Types -> "what is allowed"

_KIND = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}
_BOUNDS = ((at.Ge, ">=", "ge"), (at.Gt, ">", "gt"), (at.Le, "<=", "le"), (at.Lt, "<", "lt"))


def _members(annotation) -> list:
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return [m for arg in typing.get_args(annotation) for m in _members(arg)]
    return [annotation]


def describe(annotation, metadata=()) -> str:
    """'an integer >= 1', 'one of relu, tanh', 'a number > 0 and < 1 (or a list of them)', ..."""
    members = _members(annotation)
    optional = type(None) in members
    members = [m for m in members if m is not type(None)]
    literals = [v for m in members if typing.get_origin(m) is Literal for v in typing.get_args(m)]
    others = [m for m in members if typing.get_origin(m) is not Literal]
    lists = [m for m in others if typing.get_origin(m) is list]
    scalars = [m for m in others if typing.get_origin(m) is not list]
    parts = [_describe_one(m, metadata if len(members) == 1 else ()) for m in scalars]
    if lists and scalars:
        parts[-1] += " (or a list of them)"
    elif lists:
        (item,) = typing.get_args(lists[0]) or (Any,)
        parts.append(f"a list of {_plural(_describe_one(item))}")
    words = [_literal(v) for v in literals]
    if not parts:
        text = "one of " + ", ".join(words) if len(words) > 1 else (words or ["anything"])[0]
    else:
        text = " or ".join(parts) + "".join(f", or {w}" for w in words)
    return text + (", or null" if optional else "")


def _describe_one(annotation, metadata=()) -> str:
    base, extra = annotation, list(metadata)
    if typing.get_origin(annotation) is Annotated:
        base, *more = typing.get_args(annotation)
        extra += more
    texts = [m.text for m in extra if isinstance(m, Allowed)]
    if texts:
        return texts[0]
    constraints = [c for m in extra for c in getattr(m, "metadata", [m])]
    bounds = []
    for kind, op, attr in _BOUNDS:
        for c in constraints:
            if isinstance(c, kind) and getattr(c, attr) not in (None, MAX_INT, MAX_SEED):
                bounds.append(f"{op} {getattr(c, attr):g}")
    if base is Any or base is dict or typing.get_origin(base) is dict:
        return "a mapping" if base is not Any else "anything"
    text = _KIND.get(base, getattr(base, "__name__", str(base)))
    return text + (" " + " and ".join(bounds) if bounds else "")


def _plural(text: str) -> str:
    for one, many in (("an integer", "integers"), ("a number", "numbers"), ("a string", "strings")):
        if text.startswith(one):
            return many + text[len(one) :]
    return text


def _literal(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
