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


def train_and_report(model, args, train, test):
    """The custom training loop the classifier examples share (the one examples/mnist_cnn.py
    writes out in full): Adam with a cosine schedule from --lr down to 0, a tqdm bar per epoch
    with the running loss and accuracy, `loss.backward()` then `opt.update(model.parameters)`.
    Then the test accuracy, the model saved to --save, and the `final:` line."""
    import time

    from tqdm import tqdm

    from pynn.data import DataLoader
    from pynn.losses import categorical_cross_entropy
    from pynn.optimizers import Adam, CosineAnnealingLR

    (train_x, train_y), (test_x, test_y) = train, test
    opt = Adam(args.lr)
    schedule = CosineAnnealingLR(opt, T_max=args.epochs)
    loader = DataLoader(train_x, train_y, batch_size=args.batch_size, shuffle=True,
                        seed=args.seed)
    seconds = 0.0
    for epoch in range(args.epochs):
        start = time.perf_counter()
        seen = correct = total_loss = 0
        bar = tqdm(loader, desc=f"epoch {epoch + 1}/{args.epochs}", mininterval=0.5)
        for xb, yb in bar:
            pred = model(xb)
            loss = categorical_cross_entropy(pred, yb)
            loss.zero_grad()
            loss.backward()
            opt.update(model.parameters)

            seen += len(yb)
            total_loss += loss.item() * len(yb)
            correct += int((pred.numpy().argmax(axis=1) == yb.numpy()).sum())
            bar.set_postfix(loss=f"{total_loss / seen:.4f}", acc=f"{correct / seen:.4f}",
                            refresh=False)
        schedule.step()
        seconds += time.perf_counter() - start

    test_acc = accuracy(model, test_x, test_y)
    model.save(args.save)
    print(f"final: epochs={args.epochs} train_acc={correct / seen:.4f} test_acc={test_acc:.4f} "
          f"sec_per_epoch={seconds / args.epochs:.3f} model={args.save}")
