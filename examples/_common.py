"""Command-line options and MNIST loading shared by the example scripts.

Every example takes --epochs, --batch-size, --lr and --seed; the MNIST ones also --data-dir and
--limit. Each prints one last line starting with "final:" that tests and the README read.
"""
import argparse

import numpy as np


def parser(doc, *, epochs, batch_size, lr, mnist=True):
    """An ArgumentParser whose description is the first paragraph of the script's docstring."""
    p = argparse.ArgumentParser(description=doc.strip().split("\n\n")[0])
    p.add_argument("--epochs", type=int, default=epochs,
                   help="passes over the training set (default: %(default)s)")
    p.add_argument("--batch-size", type=int, default=batch_size,
                   help="samples per step (default: %(default)s)")
    p.add_argument("--lr", type=float, default=lr,
                   help="initial learning rate (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0,
                   help="seed of the weight initialisation and of the shuffling "
                        "(default: %(default)s)")
    if mnist:
        p.add_argument("--data-dir", default=None,
                       help="folder holding mnist/ with the four IDX .gz files (downloaded "
                            "there if missing; default: $PYNN_DATA_DIR, else ~/.cache/pynn)")
        p.add_argument("--limit", type=int, default=None, metavar="N",
                       help="use only the first N training and N test samples (quick runs, CI)")
    return p


def load_mnist(args, flatten=False, verbose=True):
    """MNIST as float32 images in [0, 1] and int64 labels, cut to --limit samples if given."""
    from pynn.datasets import mnist
    (train_x, train_y), (test_x, test_y) = mnist(flatten=flatten, data_dir=args.data_dir)
    if args.limit:
        n = args.limit
        train_x, train_y, test_x, test_y = train_x[:n], train_y[:n], test_x[:n], test_y[:n]
    if verbose:
        print(f"MNIST: {len(train_x)} training and {len(test_x)} test images of shape "
              f"{train_x.shape[1:]}")
    return (train_x, train_y), (test_x, test_y)


def accuracy(model, x, y, batch_size=1000):
    """Fraction of samples whose highest-scoring class is the label (model.predict, eval mode)."""
    return float(np.mean(model.predict(x, batch_size=batch_size).argmax(axis=1) == y))
