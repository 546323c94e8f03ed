"""Train a model: python train.py [group=choice ...] [key=value ...]  (see README.md)."""

from deeptune.train import cli

if __name__ == "__main__":
    cli()
