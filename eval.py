"""Test a saved model: python eval.py ckpt_path=<run>/checkpoints/best.ckpt  (see README.md)."""

from deeptune.eval import cli

if __name__ == "__main__":
    cli()
