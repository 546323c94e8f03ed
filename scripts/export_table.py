"""Write one of scikit-learn's bundled data sets as a CSV or NPZ file, to try data=csv / data=npz.

python scripts/export_table.py wine scratch/wine.csv
python train.py data=csv data.source.path=scratch/wine.csv data.source.target=label
"""

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn import datasets

LOADERS = {
    "iris": datasets.load_iris,
    "wine": datasets.load_wine,
    "breast_cancer": datasets.load_breast_cancer,
    "digits": datasets.load_digits,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset", choices=sorted(LOADERS))
    parser.add_argument("out", type=Path, help="a .csv (header + label column) or .npz (x, y)")
    args = parser.parse_args()
    bunch = LOADERS[args.dataset]()
    args.out.parent.mkdir(parents=True, exist_ok=True)  # e.g. the README's scratch/
    if args.out.suffix == ".npz":
        np.savez(args.out, x=bunch.data, y=bunch.target)
    elif args.out.suffix == ".csv":
        frame = pd.DataFrame(bunch.data, columns=[str(c) for c in bunch.feature_names])
        frame["label"] = np.asarray(bunch.target_names)[bunch.target]
        frame.to_csv(args.out, index=False)
    else:
        parser.error(f"out={str(args.out)!r}: use a .csv or .npz file name")
    print(f"wrote {args.out} ({len(bunch.target)} rows, {bunch.data.shape[1]} features)")


if __name__ == "__main__":
    main()
