"""MNIST with the original pynn network: a 784-256-128-32-10 MLP, Adam, 98% test accuracy.

Trains with a tqdm bar per epoch (running loss and accuracy), measures the test accuracy with
model.predict, and saves the model (pynn.load_model reads it back).

    python examples/mnist_mlp.py --data-dir ../shared/data
"""

from _common import load_mnist, parser, train_and_report

import pynn
from pynn import Input, Model
from pynn.activations import relu, softmax
from pynn.layers import Dense

p = parser(__doc__, epochs=10, batch_size=64, lr=1e-3)
p.add_argument("--save", default="mnist_mlp.pynn",
               help="where to save the trained model (default: %(default)s)")
args = p.parse_args()

pynn.manual_seed(args.seed)
(train_x, train_y), (test_x, test_y) = load_mnist(args, flatten=True)   # x: (n, 784)

x_in = Input((784,))
x = Dense(784, 256, relu)(x_in)
x = Dense(256, 128, relu)(x)
x = Dense(128, 32, relu)(x)
x = Dense(32, 10, softmax)(x)
model = Model(x_in, x)
model.summary()

train_and_report(model, args, (train_x, train_y), (test_x, test_y))
