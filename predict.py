"""Predict new rows: python predict.py ckpt_path=<best.ckpt> input=new.csv  (see README.md)."""

from deeptune.predict import cli

if __name__ == "__main__":
    cli()
