"""`restarts_backend=batched`: the N restarts of an MLP trained as one vectorised model.

N small networks fitted one after another each pay Lightning's fixed cost and use a sliver of
the machine; stacked, one forward and one backward per step serve them all. Each member is the
sequential restart i made exactly as `deeptune.run.fit.fit_one` makes it (its config from
`repeat.variants`, its network built under seed + i, so the initial weights are identical; its
own shuffling, TensorBatches seeded by its config's data.seed); it keeps its own optimiser
state, its own gradient clipping (norm or value), its own dropout masks, its own early stopping
and its own best weights, and leaves restart_<i>/checkpoints/best.ckpt (the state_dict keys and
the `deeptune` entry of a sequential restart's, so deeptune.load, eval.py, predict and
ensembles read it) and the metrics `repeat.fit_part` writes.

The members of one fit may also differ in MEMBER_KEYS (hydra/launcher=batched batches a sweep
over them): the optimiser's scalar hyper-parameters (each member its own param group) and the
dropout rate; `check_group` says why two configs cannot share a fit, `group_key` groups them.

A hand loop, not Lightning: a LightningModule is one model with one optimiser step, one early
stopping and one checkpoint, and N of each is what this needs. What it cannot batch is refused
before training by `check` (deeptune.config's validation phase).
"""

import time
from pathlib import Path

from omegaconf import DictConfig

from deeptune.errors import ConfigError

MLP = "deeptune.models.mlp.MLP"
TENSOR_DATA = "deeptune.data.datamodule.TensorDataModule"
# Optimisers whose update of each parameter element reads that element's gradient and state
# only (weight decay, coupled or not, included): one of them over the members' stacked
# parameters updates each member as its own would. LBFGS (a line search over the whole
# vector) and per-tensor trust ratios (LARS / LAMB) would mix the members.
ELEMENTWISE_OPTIMIZERS = {
    f"torch.optim.{name}"
    for name in ("Adam", "AdamW", "SGD", "RMSprop", "Adagrad", "Adamax", "NAdam", "RAdam")
}
TRAINER_DEFAULTS = {  # trainer keys the hand loop implements only at these values
    "devices": (1, "1", None, "auto"),
    "num_nodes": (1, None),
    "precision": ("32-true", "32", 32, None),
    "accumulate_grad_batches": (1, None),
    "check_val_every_n_epoch": (1, None),
    "fast_dev_run": (False, 0, None),
    "overfit_batches": (0, 0.0, None),
    "limit_train_batches": (1.0, 1, None),
    "limit_val_batches": (1.0, 1, None),
    "limit_test_batches": (1.0, 1, None),
    "max_steps": (-1, None),
    "min_steps": (None, 0),
    "min_epochs": (None, 0),
    "val_check_interval": (1.0, 1, None),
    "max_time": (None,),
    "strategy": ("auto", None),
    "profiler": (None,),
}
# Callbacks the hand loop stands in for (checkpoint, early stopping), may leave out (progress,
# summaries, diagnostics, the learning-rate log, last.ckpt: a batched run starts again from
# scratch), or that build nothing in a restart (the run modes' nodes). Any other would change
# the training it does not run, so it is refused.
CALLBACKS = {
    "model_checkpoint",
    "early_stopping",
    "last_checkpoint",
    "non_finite_loss",
    "lr_monitor",
    "grad_health",
    "progress_bar",
    "model_summary",
    "stepwise",
    "freeze",
    "optuna_pruning",  # each restart's config drops it (repeat.variants)
}


# Config keys in which the members of one batched fit may differ (the rest must agree): the
# seed (initial weights, data order, dropout masks), the output folder, the scalar
# hyper-parameters of the element-wise optimisers (each member gets its own param group) and
# the dropout rate (a per-member buffer in the batched forward). None changes a shape.
OPTIMIZER_MEMBER_KEYS = (
    "lr",
    "weight_decay",
    "momentum",
    "dampening",
    "nesterov",
    "betas",
    "eps",
    "alpha",
    "lr_decay",
    "amsgrad",
)
MEMBER_KEYS = (
    "seed",
    "data.seed",
    "paths.output_dir",
    *(f"optimizer.{k}" for k in OPTIMIZER_MEMBER_KEYS),
    "model.dropout",
)

# hydra/launcher=batched: the metrics of the jobs it fitted together, by their output folders
# (resolved), until each job's own task run takes them (`take_fitted`, in repeat.run).
FITTED: dict[str, dict] = {}


def take_fitted(out_dir) -> dict | None:
    """The metrics fit_members left for the job in `out_dir`, once; None for any other job."""
    return FITTED.pop(str(Path(str(out_dir)).resolve()), None) if FITTED else None


def check(c: dict) -> None:
    """One ConfigError naming the first knob the batched back end cannot honour; `c` is the
    resolved config (deeptune.config.validate)."""
    if c.get("restarts_backend", "sequential") != "batched" or c["restarts"] < 2:
        return  # restarts=1 (each restart's own config among them): a plain fit
    check_member(c)


def check_member(c: dict) -> None:
    """The rules for one member's config, whatever its `restarts` (hydra/launcher=batched checks
    each job with them)."""

    def refuse(key, value, why="the batched back end cannot batch it"):
        raise ConfigError(key, value, f"{why}: use restarts_backend=sequential")

    model, data = c["model"], c["data"]
    if model.get("_target_") != MLP:
        refuse("model", model.get("_target_"), "batches model=mlp only")
    if model.get("norm", "none") == "batch":
        refuse("model.norm", "batch", "batch norm's running statistics are not batched")
    if model.get("compile"):
        refuse("model.compile", True)
    if data.get("_target_") != TENSOR_DATA:
        refuse("data._target_", data.get("_target_"), "batches the in-memory tables only")
    optimizer = c["optimizer"].get("_target_")
    if optimizer not in ELEMENTWISE_OPTIMIZERS:
        refuse("optimizer", optimizer, "batches element-wise optimisers only (adam, sgd, ...)")
    if c.get("scheduler"):
        refuse("scheduler", c["scheduler"].get("_target_"), "batches scheduler=none only")
    trainer = c["trainer"]
    for key, allowed in TRAINER_DEFAULTS.items():
        if key in trainer and trainer[key] not in allowed:
            refuse(f"trainer.{key}", trainer[key])
    if c["stepwise"]["strategy"] != "none":
        refuse("stepwise.strategy", c["stepwise"]["strategy"])
    ft = c["finetune"]
    if ft["from"] is not None or ft["freeze"]:
        key = "finetune.from" if ft["from"] is not None else "finetune.freeze"
        refuse(key, ft["from"] if ft["from"] is not None else ft["freeze"])
    if c["ckpt_path"] is not None:
        refuse("ckpt_path", c["ckpt_path"], "a batched run starts from scratch")
    for key in ("confusion", "tsne"):
        if c["report"][key]:
            refuse(f"report.{key}", True)
    callbacks = c.get("callbacks") or {}
    if callbacks.get("model_checkpoint") is None:
        refuse("callbacks.model_checkpoint", None, "keeps each member's best weights: keep it")
    for name, node in callbacks.items():
        if node is not None and name not in CALLBACKS:
            refuse(f"callbacks.{name}", node.get("_target_"))


def group_key(cfg: DictConfig) -> str:
    """What the members of one batched fit must share, as one string: the config without
    MEMBER_KEYS and without Hydra's own node (job number, overrides, run folder). Jobs with
    equal keys can be batched (hydra/launcher=batched groups by it). Unresolved, so that an
    interpolation such as data.seed=${seed} compares as written."""
    import json

    from omegaconf import OmegaConf

    return json.dumps(_shared(OmegaConf.to_container(cfg, resolve=False)), sort_keys=True)


def check_group(parts: list[DictConfig]) -> None:
    """A ConfigError naming the first key outside MEMBER_KEYS in which a member's config differs
    from the first member's (they cannot share one batched fit); each member's own rules are
    check_member's."""
    from omegaconf import OmegaConf

    first, *rest = (_shared(OmegaConf.to_container(p, resolve=False)) for p in parts)
    for other in rest:
        key, value = _first_difference(first, other)
        if key is not None:
            raise ConfigError(
                key,
                value,
                f"members of one batched fit may differ only in {', '.join(MEMBER_KEYS)}",
            )


def _shared(c: dict) -> dict:
    c = {k: v for k, v in c.items() if k != "hydra"}
    for dotted in MEMBER_KEYS:
        *parents, leaf = dotted.split(".")
        node = c
        for part in parents:
            node = node.get(part) if isinstance(node, dict) else None
        if isinstance(node, dict):
            node.pop(leaf, None)
    return c


def _first_difference(a, b, prefix: str = ""):
    """(dotted key, b's value) of the first difference between two config trees, or (None,
    None)."""
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted({*a, *b}, key=str):
            key, value = _first_difference(a.get(k), b.get(k), f"{prefix}{k}.")
            if key is not None:
                return key, value
        return None, None
    return (None, None) if a == b else (prefix.rstrip("."), b)


class Member:
    """One restart: its config, data module, LightningModule (the network member i was built
    with; its torchmetrics score the member) and early stopping."""

    def __init__(self, cfg: DictConfig, data):
        import lightning as L
        from hydra.utils import instantiate

        from deeptune import builders, outputs
        from deeptune.run import portable

        self.cfg, self.out_dir = cfg, Path(cfg.paths.output_dir)
        # As fit_one: the seed, then the data module, then the network: the same initial weights.
        L.seed_everything(cfg.seed, workers=True, verbose=False)
        self.dm = builders.datamodule(cfg, data)
        self.model = builders.module(cfg, self.dm)
        self.model.deeptune_state = portable.describe(cfg, self.dm)
        self.dm.setup("fit")
        stopping = (cfg.get("callbacks") or {}).get("early_stopping")
        self.stopping = instantiate(stopping) if stopping is not None else None
        best = cfg.callbacks.model_checkpoint
        self.monitor, self.mode = best.monitor, best.get("mode", "min")
        self.best = None  # (score, epoch, global_step, {name: weights})
        self.epochs, self.train = 0, {}
        outputs.save_config(cfg, self.out_dir)

    def batches(self, epoch: int):
        """The training batches' sample indices in this member's order for `epoch`."""
        batches = self.dm.train_dataloader()
        batches.epoch = lambda: epoch
        return batches._indices()

    def improved(self, score: float) -> bool:
        """ModelCheckpoint's test (save_top_k=1): the first score, then a strictly better one;
        NaN is never better."""
        if score != score:
            return self.best is None
        if self.best is None or self.best[0] != self.best[0]:
            return True
        return score > self.best[0] if self.mode == "max" else score < self.best[0]

    def should_stop(self, score: float) -> bool:
        """EarlyStopping's own criteria (patience, min_delta, thresholds, check_finite)."""
        import torch

        if self.stopping is None:
            return False
        stop, _ = self.stopping._evaluate_stopping_criteria(torch.tensor(score))
        return stop


def fit_members(parts: list[DictConfig], data) -> list[dict]:
    """The sequential fits' metrics (what fit.fit_one returns for each), fitted together. The
    members' configs agree outside MEMBER_KEYS (restarts: the seed; hydra/launcher=batched:
    check_group)."""
    import torch
    from torch.func import functional_call, vmap

    from deeptune.console import say

    started, cpu_started = time.perf_counter(), time.process_time()
    members = [Member(part, data) for part in parts]
    template = members[0].model  # member 0's module: functional_call swaps in each one's weights
    device = _device(parts[0])
    for m in members:
        m.model.to(device)
    x_train, y_train = (t.to(device) for t in members[0].dm.tensors["train"])
    # The members share one split unless data.split_seed follows the seed: then each its own.
    shared = all(_same_split(m, members[0]) for m in members)
    if not shared:
        x_train = torch.stack([m.dm.tensors["train"][0] for m in members]).to(device)
        y_train = torch.stack([m.dm.tensors["train"][1] for m in members]).to(device)
    # torch.func over stacked parameters rather than grouped matmuls: any MLP the config builds
    # (widths, activations, residuals, layer norm, dropout) runs through its own forward; vmap
    # turns each Linear into one batched matmul, and randomness="different" draws each member's
    # own dropout masks.
    # Shared hyper-parameters (restarts): one stacked leaf per parameter, the faster path
    # (8 members of the default MLP on digits, 30 epochs, 1 thread: 7.8 s against 9.3 s with
    # per-member leaves, medians of 4 interleaved pairs); otherwise a param group per member.
    same = all(_optimizer(m) == _optimizer(members[0]) for m in members)
    store = (_Stacked if same else _PerMember)(members, device)
    restore = _rate_dropout(members, store.buffers, device)

    def member_loss(p, b, x, y):
        out = functional_call(template, ({f"net.{k}": v for k, v in {**p, **b}.items()}), (x,))
        return template.loss(out, y), out

    step = vmap(member_loss, randomness="different")
    trainer = parts[0].trainer
    clip_val = trainer.get("gradient_clip_val")
    clip = (float(clip_val), trainer.get("gradient_clip_algorithm") or "norm") if clip_val else ()
    x_val = torch.stack([m.dm.tensors["val"][0] for m in members]).to(device)
    y_val = torch.stack([m.dm.tensors["val"][1] for m in members]).to(device)
    active = list(range(len(members)))  # the members still training, in the stack's order
    # Lightning's own limit when neither max_epochs nor max_steps is set
    max_epochs = parts[0].trainer.max_epochs or 1000
    stop_on_nan = (parts[0].get("callbacks") or {}).get("non_finite_loss") is not None
    batch_size = members[0].dm.batch_size
    say(
        f"deeptune: {len(members)} {'restarts' if same else 'members'} batched: "
        f"{type(template.net).__name__} "
        f"({sum(p.numel() for p in template.net.parameters()):,} parameters each), "
        f"up to {max_epochs} epochs on {device.type}"
    )
    epoch, global_step = 0, 0
    try:
        while active and epoch < max_epochs:
            template.train()
            order = torch.stack([members[i].batches(epoch) for i in active]).to(device)
            rows = torch.arange(len(active), device=device)[:, None]
            xs, ys = (x_train, y_train) if shared else (x_train[active], y_train[active])
            seen = []  # (outputs, targets, losses, batch size) per step, for the train metrics
            for idx in order.split(batch_size, dim=1):
                # (members, batch, ...): member i's own samples, in its own order
                x, y = (xs[idx], ys[idx]) if shared else (xs[rows, idx], ys[rows, idx])
                losses, out = step(store.params(active), store.buffers, x, y)
                # The sum's gradient in member i's parameters is member i's own loss's gradient.
                losses.sum().backward()
                if clip:
                    store.clip(active, *clip)
                store.optimizer.step()
                store.optimizer.zero_grad(set_to_none=True)
                seen.append((out.detach(), y, losses.detach(), idx.shape[1]))
                global_step += 1
            if stop_on_nan:  # callbacks.non_finite_loss, as a sequential restart's would stop
                _check_finite(seen, [_name(members[i]) for i in active], epoch)
            with torch.no_grad():
                params = store.params(active)
            scores = _validate(
                members, active, params, store.buffers, template, x_val[active], y_val[active]
            )
            stopped = []
            for row, i in enumerate(active):
                m = members[i]
                m.epochs = epoch + 1
                m.train = _train_metrics(m.model, seen, row)
                score = scores[row][m.monitor]
                stop = m.should_stop(score)  # EarlyStopping runs before ModelCheckpoint
                if m.improved(score):
                    weights = {k: v[row].detach().clone() for k, v in params.items()}
                    m.best = (score, epoch, global_step, weights)
                if stop:
                    stopped.append(row)
            if stopped:  # out of the stack: a stopped member no longer updates nor costs a step
                keep = [r for r in range(len(active)) if r not in stopped]
                store.drop(keep, active, template.optimizer_factory)
                active = [active[r] for r in keep]
            epoch += 1
    finally:
        restore()  # the members' own dropout modules back: their checkpoints and evaluation
    fit_s = round(time.perf_counter() - started, 3)
    fit_cpu_s = round(time.process_time() - cpu_started, 3)
    return [_finish(m, fit_s, fit_cpu_s) for m in members]


def _optimizer(m: Member) -> dict:
    from omegaconf import OmegaConf

    return OmegaConf.to_container(m.cfg.optimizer, resolve=True)


class _Stacked:
    """Members that share their optimiser's hyper-parameters (restarts): one leaf per parameter
    name with the members on its first axis and one optimiser over those leaves, so a step
    updates P tensors, not N * P (the fast path: scripts/bench_batched.py)."""

    def __init__(self, members: list[Member], device):
        from torch.func import stack_module_state

        params, buffers = stack_module_state([m.model.net for m in members])
        self.stack = {k: v.to(device).detach().requires_grad_() for k, v in params.items()}
        self.buffers = {k: v.to(device) for k, v in buffers.items()}
        self.optimizer = members[0].model.optimizer_factory(list(self.stack.values()))

    def params(self, active: list[int]) -> dict:
        return self.stack  # compacted by drop() to the active members already

    def clip(self, active: list[int], value: float, algorithm: str) -> None:
        _clip(self.stack, value, algorithm)

    def drop(self, keep: list[int], active: list[int], factory) -> None:
        self.stack, self.optimizer = _compact(self.stack, self.optimizer, keep, factory)
        self.buffers = {k: v[keep] for k, v in self.buffers.items()}


class _PerMember:
    """Members whose optimiser hyper-parameters differ (a batched sweep): each member's
    parameters stay its own leaf tensors and the optimiser gets one param group per member,
    built by that member's own optimizer config, so lr, weight decay, momentum, betas, ... are
    torch's own per-group values and no update is rewritten here. The leaves are stacked for
    the vmapped forward in each step (torch.stack's backward hands each member its slice of
    the gradient); a stopped member's group is dropped."""

    def __init__(self, members: list[Member], device):
        from torch.func import stack_module_state

        _, buffers = stack_module_state([m.model.net for m in members])
        self.buffers = {k: v.to(device) for k, v in buffers.items()}
        self.leaves = [
            {
                k: p.detach().to(device).clone().requires_grad_()
                for k, p in m.model.net.named_parameters()
            }
            for m in members
        ]
        groups = []
        for m, leaves in zip(members, self.leaves, strict=True):
            # the member's own optimiser, built for its group's values (its defaults filled in)
            own = m.model.optimizer_factory(list(leaves.values())).param_groups[0]
            groups.append({**own, "params": list(leaves.values())})
        self.optimizer = members[0].model.optimizer_factory(groups)

    def params(self, active: list[int]) -> dict:
        import torch

        return {k: torch.stack([self.leaves[i][k] for i in active]) for k in self.leaves[0]}

    def clip(self, active: list[int], value: float, algorithm: str) -> None:
        # Lightning's own clipping functions, once per member over that member's gradients
        from torch.nn.utils import clip_grad_norm_, clip_grad_value_

        for i in active:
            grads = list(self.leaves[i].values())
            if algorithm == "value":
                clip_grad_value_(grads, value)
            else:
                clip_grad_norm_(grads, value)

    def drop(self, keep: list[int], active: list[int], factory) -> None:
        gone = {
            id(p) for r, i in enumerate(active) if r not in keep for p in self.leaves[i].values()
        }
        self.optimizer.param_groups = [
            g for g in self.optimizer.param_groups if id(g["params"][0]) not in gone
        ]
        for p in [p for p in self.optimizer.state if id(p) in gone]:
            del self.optimizer.state[p]
        self.buffers = {k: v[keep] for k, v in self.buffers.items()}


def _rate_dropout(members: list[Member], buffers: dict, device):
    """Members whose model.dropout differs: nn.Dropout's rate is a module attribute, which
    functional_call cannot swap per member, so for the batched forward only member 0's
    dropout modules (or the nn.Identity a rate of 0 builds) give way to one whose rate is a
    per-member buffer in `buffers` (its mask drawn under vmap(randomness="different")). Returns
    the function that puts the member's own modules back (its checkpoint and evaluation)."""
    import torch
    from torch import nn

    def rates(m):
        return [
            mod.p if isinstance(mod, nn.Dropout) else 0.0
            for name, mod in m.model.net.named_modules()
            if name.split(".")[-1] == "dropout"
        ]

    if all(rates(m) == rates(members[0]) for m in members):
        return lambda: None  # one rate per layer for all: the modules' own dropout

    class RateDropout(nn.Module):
        def __init__(self):
            super().__init__()
            self.register_buffer("rate", torch.zeros(()), persistent=False)

        def forward(self, x):
            if not self.training:
                return x
            keep = (torch.rand_like(x) >= self.rate).to(x.dtype)
            return x * keep / (1 - self.rate)

    net = members[0].model.net
    names = [n for n, _ in net.named_modules() if n.split(".")[-1] == "dropout"]
    table = torch.tensor([rates(m) for m in members], dtype=torch.float32, device=device)
    originals = {}
    for j, name in enumerate(names):
        parent, _, leaf = name.rpartition(".")
        owner = net.get_submodule(parent)
        originals[name] = (owner, leaf, getattr(owner, leaf))
        setattr(owner, leaf, RateDropout().to(device))
        buffers[f"{name}.rate"] = table[:, j]

    def restore():
        for owner, leaf, module in originals.values():
            setattr(owner, leaf, module)

    return restore


def _name(m: Member) -> str:
    """A member as its error names it: `restart_<i>`, or the folder of a job that
    hydra/launcher=batched grouped with others."""
    return m.out_dir.name if m.out_dir.name.startswith("restart_") else str(m.out_dir)


def _check_finite(seen: list, names: list[str], epoch: int) -> None:
    """The epoch's training losses (one read): NonFiniteLoss at the first member whose loss is
    NaN or inf, named by `names` (the active members', in the stack's order)."""
    import torch

    from deeptune.callbacks.nonfinite import NonFiniteLoss

    losses = torch.stack([step[2] for step in seen])  # (steps, members)
    finite = torch.isfinite(losses)
    if bool(finite.all()):
        return
    step, row = (int(i) for i in (~finite).nonzero()[0])
    raise NonFiniteLoss(
        f"{names[row]}: the training loss became {losses[step, row].item()} at epoch "
        f"{epoch + 1}, step {step} of the epoch. Likely causes: a learning rate too high (lower "
        "optimizer.lr), no gradient clipping (trainer.gradient_clip_val=1.0), or an init that "
        "explodes (model.init=normal with depth; try kaiming_* or xavier_*)"
    )


def _clip(params: dict, value: float, algorithm: str) -> None:
    """Each member's gradients clipped as Lightning clips one model's (trainer.gradient_clip_*):
    `value` clamps every element; `norm` scales a member's gradients by
    min(1, value / (its global 2-norm + 1e-6)), torch.nn.utils.clip_grad_norm_'s formula, with
    the norm taken over that member's slices only."""
    import torch

    grads = [p.grad for p in params.values() if p.grad is not None]
    if algorithm == "value":
        for g in grads:
            g.clamp_(-value, value)
        return
    norms = torch.stack([torch.linalg.vector_norm(g.flatten(1), dim=1) for g in grads], dim=1)
    total = torch.linalg.vector_norm(norms, dim=1)  # (members,)
    coef = torch.clamp(value / (total + 1e-6), max=1.0)
    for g in grads:
        g.mul_(coef.view(-1, *([1] * (g.dim() - 1))))


def _same_split(a: Member, b: Member) -> bool:
    import torch

    return all(
        torch.equal(a.dm.tensors[s][k], b.dm.tensors[s][k])
        for s in ("train", "val")
        for k in (0, 1)
    )


def _device(cfg: DictConfig):
    import torch

    accelerator = str(cfg.trainer.get("accelerator", "auto"))
    if accelerator in ("gpu", "cuda", "auto") and torch.cuda.is_available():
        return torch.device("cuda")
    return torch.device("cpu")


def _validate(members, active, params, buffers, template, x_val, y_val) -> list[dict]:
    """Each active member's val metrics this epoch ({'val/acc': ..., ...}), as Lightning's
    validation loop logs them: eval mode, eval_batch_size chunks, the module's torchmetrics."""
    import torch
    from torch.func import functional_call, vmap

    template.eval()

    def forward(p, b, x, y):
        out = functional_call(template, ({f"net.{k}": v for k, v in {**p, **b}.items()}), (x,))
        return template.loss(out, y), out

    chunk = members[active[0]].dm.eval_batch_size
    results = []
    with torch.no_grad():
        pieces = [
            vmap(forward)(params, buffers, x, y)
            for x, y in zip(x_val.split(chunk, dim=1), y_val.split(chunk, dim=1), strict=True)
        ]
        for row, i in enumerate(active):
            steps = [
                (out[row], y[row], loss[row], y.shape[1])
                for (loss, out), y in zip(pieces, y_val.split(chunk, dim=1), strict=True)
            ]
            results.append(_scores(members[i].model, "val", steps))
    return results


def _scores(model, stage: str, steps) -> dict:
    """{'<stage>/<metric>': float} from (outputs, targets, loss, size) per batch: the module's
    MeanMetric and torchmetrics, as TaskModule._log_epoch computes them."""
    import torch

    from deeptune.metrics import flatten

    model.pending[stage] = [(o, y, loss, n) for o, y, loss, n in steps]
    model._flush(stage)
    values = {
        f"{stage}/loss": model.losses[f"_{stage}"].compute(),
        **flatten(model.metrics[f"_{stage}"].compute(), model.classes, model.outputs),
    }
    model.losses[f"_{stage}"].reset()
    model.metrics[f"_{stage}"].reset()
    return {k: float(v) if isinstance(v, torch.Tensor) else v for k, v in values.items()}


def _train_metrics(model, seen, row: int) -> dict:
    """The epoch's running train figures of one member (Lightning's train/* after the epoch)."""
    from deeptune.outputs import split_metrics

    steps = [(out[row], y[row], losses[row], n) for out, y, losses, n in seen]
    return split_metrics(_scores(model, "train", steps)).get("train", {})


def _compact(params: dict, optimizer, keep: list[int], factory):
    """The stacked parameters and the optimiser's state of the members in `keep` only. The
    optimiser's per-element state has the members on its first axis; a scalar (Adam's step)
    is shared, as the members stepped together."""
    new = {k: v.detach()[keep].clone().requires_grad_() for k, v in params.items()}
    fresh = factory(list(new.values()))
    for old, p in zip(params.values(), new.values(), strict=True):
        state = optimizer.state.get(old)
        if state:
            fresh.state[p] = {
                k: v[keep].clone() if hasattr(v, "dim") and v.dim() and v.shape == old.shape else v
                for k, v in state.items()
            }
    return new, fresh


def _finish(m: Member, fit_s: float, fit_cpu_s: float) -> dict:
    """Member m's best weights into its network, written as checkpoints/best.ckpt, scored on
    val (and test) as fit_one scores the kept checkpoint."""
    import lightning as L
    import torch

    _, epoch, global_step, weights = m.best
    with torch.no_grad():
        for name, p in m.model.net.named_parameters():
            p.copy_(weights[name])
    m.model.cpu().eval()
    path = m.out_dir / "checkpoints" / "best.ckpt"
    path.parent.mkdir(parents=True, exist_ok=True)
    checkpoint = {
        "epoch": epoch,
        "global_step": global_step,
        "pytorch-lightning_version": L.__version__,
        "state_dict": m.model.state_dict(),
    }
    m.model.on_save_checkpoint(checkpoint)  # the RNG and the `deeptune` entry, as Lightning's
    torch.save(checkpoint, path)
    metrics = {"train": m.train}
    splits = ("val", "test") if m.cfg.test else ("val",)
    with torch.no_grad():
        for split in splits:
            x, y = (t.cpu() for t in m.dm.tensors[split])
            chunk = m.dm.eval_batch_size
            steps = []
            for xs, ys in zip(x.split(chunk), y.split(chunk), strict=True):
                out = m.model(xs)
                steps.append((out, ys, m.model.loss(out, ys), len(ys)))
            metrics.update({split: _split(_scores(m.model, split, steps), split)})
    metrics.update(
        n_params=sum(p.numel() for p in m.model.net.parameters()),
        epochs=m.epochs,
        best_epoch=epoch + 1,
        best_checkpoint=str(path),
        fit_s=fit_s,  # the batched fit's, shared by its members
        fit_cpu_s=fit_cpu_s,
        backend="batched",
    )
    return metrics


def _split(values: dict, split: str) -> dict:
    from deeptune.outputs import split_metrics

    return split_metrics(values).get(split, {})
