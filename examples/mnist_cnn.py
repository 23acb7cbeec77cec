"""MNIST with a small convolutional network: two Conv2d+MaxPool2d blocks and two Dense layers.

Reaches 99% test accuracy. Trains with a tqdm bar per epoch (running loss and accuracy),
measures the test accuracy with model.predict, and saves the model (pynn.load_model reads it).

    python examples/mnist_cnn.py --data-dir ../shared/data
    mpirun -n 2 python examples/mnist_cnn.py --distributed --data-dir ../shared/data

With --distributed (under mpirun) every rank trains on its shard of each epoch with
--batch-size samples per step, the gradients are averaged over the ranks, and the learning rate
is --lr times the number of ranks; only rank 0 prints, draws the bar and saves.
"""
import time

from _common import accuracy, load_mnist, parser
from tqdm import tqdm

import pynn
import pynn.distributed as dist
from pynn import Input, Model
from pynn.activations import relu, softmax
from pynn.data import DataLoader
from pynn.layers import Conv2d, Dense, Flatten, MaxPool2d
from pynn.losses import categorical_cross_entropy
from pynn.optimizers import Adam, CosineAnnealingLR

p = parser(__doc__, epochs=3, batch_size=32, lr=2e-3)
p.add_argument("--save", default="mnist_cnn.pynn",
               help="where to save the trained model (default: %(default)s)")
p.add_argument("--distributed", action="store_true",
               help="data-parallel training over MPI: launch with mpirun -n N")
args = p.parse_args()
if args.distributed:
    dist.init()          # without it: a world of one process, and the dist calls do nothing
main = dist.is_main()

pynn.manual_seed(args.seed)
(train_x, train_y), (test_x, test_y) = load_mnist(args, verbose=main)   # x: (n, 1, 28, 28)

x_in = Input((1, 28, 28))
x = Conv2d(1, 32, 3, padding=1, activation=relu)(x_in)      # (32, 28, 28)
x = MaxPool2d(2)(x)                                         # (32, 14, 14)
x = Conv2d(32, 64, 3, padding=1, activation=relu)(x)        # (64, 14, 14)
x = MaxPool2d(2)(x)                                         # (64, 7, 7)
x = Flatten()(x)                                            # (3136,)
x = Dense(64 * 7 * 7, 128, relu)(x)
x = Dense(128, 10, softmax)(x)
model = Model(x_in, x)
if main:
    model.summary()

dist.broadcast_parameters(model, root=0)                    # every rank starts from rank 0's
opt = dist.DistributedOptimizer(Adam(args.lr * dist.world_size()))
schedule = CosineAnnealingLR(opt, T_max=args.epochs)   # lr: from --lr down to 0, a cosine
loader = DataLoader(train_x, train_y, batch_size=args.batch_size, shuffle=True, seed=args.seed,
                    shard=dist.shard())
seconds = 0.0
for epoch in range(args.epochs):
    start = time.perf_counter()
    seen = correct = total_loss = 0
    bar = tqdm(loader, desc=f"epoch {epoch + 1}/{args.epochs}", disable=not main,
               mininterval=0.5)
    for xb, yb in bar:
        pred = model(xb)
        loss = categorical_cross_entropy(pred, yb)
        loss.zero_grad()
        loss.backward()
        opt.update(model.parameters)

        seen += len(yb)
        total_loss += loss.item() * len(yb)
        correct += int((pred.numpy().argmax(axis=1) == yb.numpy()).sum())
        bar.set_postfix(loss=f"{total_loss / seen:.4f}", acc=f"{correct / seen:.4f}", refresh=False)
    schedule.step()
    seconds += time.perf_counter() - start

seen, correct = dist.allreduce(seen), dist.allreduce(correct)    # over all ranks' last epoch
if main:
    test_acc = accuracy(model, test_x, test_y)
    model.save(args.save)
    print(f"final: epochs={args.epochs} train_acc={correct / seen:.4f} test_acc={test_acc:.4f} "
          f"sec_per_epoch={seconds / args.epochs:.3f} model={args.save}")
