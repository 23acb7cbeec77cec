"""MNIST read row by row by an LSTM: 28 time steps of 28 pixels, then a Dense classifier.

The LSTM (Keras form, LSTM(units): the input size is read from the input) returns its last
step's output, which a softmax Dense layer turns into class probabilities. Reaches 98% test
accuracy. Trains with a tqdm bar per epoch, measures the test accuracy with model.predict and
saves the model (pynn.load_model reads it).

    python examples/seq_mnist_lstm.py --data-dir ../shared/data
"""

from _common import load_mnist, parser, train_and_report

import pynn
from pynn import Input, Model
from pynn.activations import softmax
from pynn.layers import LSTM, Dense

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

train_and_report(model, args, (train_x, train_y), (test_x, test_y))
