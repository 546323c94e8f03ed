"""The schema of the lab-only knobs (deeptune.lab.data, deeptune.lab.optim), used by
configs/experiment/*.yaml."""

from typing import Literal

from deeptune.data.schema import DataNode
from deeptune.optim.schema import SGDNode
from deeptune.schema import Float, PosFloat, PosInt, Target, schema


@schema("deeptune.lab.data.LabDataModule")
class LabDataNode(DataNode):
    train_fraction: Float(gt=0, le=1) = None
    sort_by_label: bool = None
    drop_last: bool = None


@schema("deeptune.lab.optim.batch_scaled")
class BatchScaledNode(SGDNode):  # and the arguments of `optimizer`, a torch.optim class
    model_config = {"extra": "allow"}
    optimizer: Target = None
    lr: PosFloat = None
    batch_size: PosInt = None
    base_batch_size: PosInt = None
    lr_scaling: Literal["none", "linear"] = None
