"""MNIST read row by row by an LSTM: 28 time steps of 28 pixels, then a Dense classifier.

The LSTM (Keras form, LSTM(units): the input size is read from the input) returns its last
step's output, which a softmax Dense layer turns into class probabilities. Reaches 98% test
accuracy. Trains with a tqdm bar per epoch, measures the test accuracy with model.predict and
saves the model (pynn.load_model reads it).

    python examples/seq_mnist_lstm.py --data-dir ../shared/data
"""
import time

from _common import accuracy, load_mnist, parser
from tqdm import tqdm

import pynn
from pynn import Input, Model
from pynn.activations import softmax
from pynn.data import DataLoader
from pynn.layers import LSTM, Dense
from pynn.losses import categorical_cross_entropy
from pynn.optimizers import Adam, CosineAnnealingLR

p = parser(__doc__, epochs=5, batch_size=64, lr=2e-3)
p.add_argument("--hidden", type=int, default=128,
               help="LSTM units (default: %(default)s)")
p.add_argument("--save", default="seq_mnist_lstm.pynn",
               help="where to save the trained model (default: %(default)s)")
args = p.parse_args()

pynn.manual_seed(args.seed)
(train_x, train_y), (test_x, test_y) = load_mnist(args)
train_x, test_x = train_x.reshape(-1, 28, 28), test_x.reshape(-1, 28, 28)   # (n, rows, pixels)

x_in = Input((28, 28))                       # 28 steps of 28 pixels
h = LSTM(args.hidden)(x_in)                  # the last step's h: (None, hidden)
y = Dense(args.hidden, 10, softmax)(h)
model = Model(x_in, y)
model.summary()

opt = Adam(args.lr)
schedule = CosineAnnealingLR(opt, T_max=args.epochs)   # lr: from --lr down to 0, a cosine
loader = DataLoader(train_x, train_y, batch_size=args.batch_size, shuffle=True, seed=args.seed)
seconds = 0.0
for epoch in range(args.epochs):
    start = time.perf_counter()
    seen = correct = total_loss = 0
    bar = tqdm(loader, desc=f"epoch {epoch + 1}/{args.epochs}")
    for xb, yb in bar:
        pred = model(xb)
        loss = categorical_cross_entropy(pred, yb)
        loss.zero_grad()
        loss.backward()
        opt.update(model.parameters)

        seen += len(yb)
        total_loss += loss.item() * len(yb)
        correct += int((pred.numpy().argmax(axis=1) == yb.numpy()).sum())
        bar.set_postfix(loss=f"{total_loss / seen:.4f}", acc=f"{correct / seen:.4f}")
    schedule.step()
    seconds += time.perf_counter() - start

test_acc = accuracy(model, test_x, test_y)
model.save(args.save)
print(f"final: epochs={args.epochs} train_acc={correct / seen:.4f} test_acc={test_acc:.4f} "
      f"sec_per_epoch={seconds / args.epochs:.3f} model={args.save}")
