"""Transfer learning: a CNN encoder trained on MNIST digits, reused for Fashion-MNIST clothes.

Three stages, each with Keras's compile/fit/evaluate, and the test accuracy after each:

1. train an encoder (two Conv2d+MaxPool2d blocks) with a classifier head on MNIST;
2. freeze the encoder (`encoder.trainable = False`) and train a new head on Fashion-MNIST;
3. unfreeze the encoder's last block and fine-tune it with the head at a lower learning rate.

    python examples/transfer_fashion.py --data-dir ../shared/data
"""
import time

from _common import parser

import pynn
from pynn import Input, Model
from pynn.datasets import fashion_mnist, mnist
from pynn.layers import Conv2d, Dense, Dropout, Flatten, MaxPool2d
from pynn.optimizers import Adam

p = parser(__doc__, epochs=2, batch_size=64, lr=1e-3)
p.add_argument("--head-epochs", type=int, default=None,
               help="epochs of stages 2 and 3 each (default: --epochs)")
args = p.parse_args()
head_epochs = args.head_epochs or args.epochs
verbose = 1


def load(fn):
    (train_x, train_y), (test_x, test_y) = fn(data_dir=args.data_dir)
    if args.limit:
        n = args.limit
        train_x, train_y, test_x, test_y = train_x[:n], train_y[:n], test_x[:n], test_y[:n]
    return (train_x, train_y), (test_x, test_y)


pynn.manual_seed(args.seed)
(mx, my), (mtx, mty) = load(mnist)
(fx, fy), (ftx, fty) = load(fashion_mnist)
print(f"MNIST: {len(mx)} training images; Fashion-MNIST: {len(fx)} training images")

# the encoder: images -> 1568 features, a Model of its own, reused below
image = Input((1, 28, 28), name="image")
h = Conv2d(1, 16, 3, padding=1, activation="relu", name="block1_conv")(image)
h = MaxPool2d(2, name="block1_pool")(h)
h = Conv2d(16, 32, 3, padding=1, activation="relu", name="block2_conv")(h)
h = MaxPool2d(2, name="block2_pool")(h)
encoder = Model(image, Flatten(name="features")(h), name="encoder")

# stage 1: encoder + digit head, trained on MNIST
x_in = Input((1, 28, 28))
digits = Model(x_in, Dense(32 * 7 * 7, 10, "softmax", name="digit_head")(encoder(x_in)))
digits.compile(optimizer=Adam(args.lr), loss="sparse_categorical_crossentropy",
               metrics=["accuracy"])
start = time.perf_counter()
digits.fit(mx, my, batch_size=args.batch_size, epochs=args.epochs, verbose=verbose)
mnist_acc = digits.evaluate(mtx, mty, verbose=0, return_dict=True)["accuracy"]
print(f"stage 1: MNIST test accuracy {mnist_acc:.4f}")

# stage 2: the encoder frozen, a new head trained on Fashion-MNIST
encoder.trainable = False
f_in = Input((1, 28, 28))
features = encoder(f_in)
head = Dense(32 * 7 * 7, 128, "relu", name="clothes_hidden")(features)
clothes = Model(f_in, Dense(128, 10, "softmax", name="clothes_head")(Dropout(0.25)(head)))
frozen_before = [p.data.copy() for p in encoder.weights]
clothes.compile(optimizer=Adam(args.lr), loss="sparse_categorical_crossentropy",
                metrics=["accuracy"])
print(f"stage 2: {sum(p.data.size for p in clothes.parameters):,} of "
      f"{sum(p.data.size for p in clothes.weights):,} weights train")
clothes.fit(fx, fy, batch_size=args.batch_size, epochs=head_epochs, verbose=verbose)
frozen_acc = clothes.evaluate(ftx, fty, verbose=0, return_dict=True)["accuracy"]
unchanged = all((a == p.data).all() for a, p in zip(frozen_before, encoder.weights))
print(f"stage 2: Fashion-MNIST test accuracy {frozen_acc:.4f} (encoder unchanged: {unchanged})")

# stage 3: unfreeze the last block, fine-tune at a tenth of the learning rate
encoder.get_layer("block2_conv").trainable = True
clothes.compile(optimizer=Adam(args.lr / 10), loss="sparse_categorical_crossentropy",
                metrics=["accuracy"])
print(f"stage 3: {sum(p.data.size for p in clothes.parameters):,} weights train")
clothes.fit(fx, fy, batch_size=args.batch_size, epochs=head_epochs, verbose=verbose)
tuned_acc = clothes.evaluate(ftx, fty, verbose=0, return_dict=True)["accuracy"]
seconds = time.perf_counter() - start
print(f"stage 3: Fashion-MNIST test accuracy {tuned_acc:.4f}")
print(f"final: mnist_acc={mnist_acc:.4f} frozen_acc={frozen_acc:.4f} tuned_acc={tuned_acc:.4f} "
      f"encoder_frozen_unchanged={unchanged} seconds={seconds:.1f}")
