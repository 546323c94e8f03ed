"""The records of an offline W&B run's `run-*.wandb` file.

wandb 0.2x+ writes no files/config.yaml for an offline run (wandb-core writes it only when it
uploads); the run's config and group are in the transaction log, a LevelDB-style log of
`Record` protobufs behind a 7-byte header. wandb no longer ships a reader for it (its
`datastore` module went with the Python back end), hence this one.
"""

import json
import struct
from pathlib import Path

BLOCK = 32768
HEADER = 7  # crc32, length, type
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def records(path: Path) -> list:
    from wandb.proto import wandb_internal_pb2 as pb

    data = Path(path).read_bytes()
    assert data[:4] == b":W&B", data[:7]
    out, pos, pending = [], 7, b""
    while pos + HEADER <= len(data):
        left = BLOCK - pos % BLOCK
        if left < HEADER:  # the block's tail is padding
            pos += left
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos : pos + HEADER])
        chunk = data[pos + HEADER : pos + HEADER + length]
        pos += HEADER + length
        if kind == 0 and length == 0:
            break
        pending = chunk if kind in (FULL, FIRST) else pending + chunk
        if kind in (FULL, LAST):
            record = pb.Record()
            record.ParseFromString(pending)
            out.append(record)
    return out


def run_info(path: Path) -> tuple[dict, str]:
    """(the run's config {key: value}, its group)."""
    config, group = {}, ""
    for record in records(path):
        kind = record.WhichOneof("record_type")
        if kind == "run":
            group = record.run.run_group or group
            items = record.run.config.update
        elif kind == "config":
            items = record.config.update
        else:
            continue
        for item in items:
            key = item.key or ".".join(item.nested_key)
            config[key] = json.loads(item.value_json)
    return config, group
