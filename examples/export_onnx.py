"""Train the MNIST CNN in pynn, export it to ONNX, and run the ONNX file with onnxruntime.

Prints the test accuracy of both (they agree: the exported graph computes what model.predict
does) and the largest difference between their probabilities. Also writes the weights as
safetensors in PyTorch's names. Needs the extras: pip install onnx onnxruntime safetensors.

    python examples/export_onnx.py --data-dir ../shared/data
"""
import time

import numpy as np
from _common import accuracy, load_mnist, parser
from tqdm import tqdm

import pynn
import pynn.onnx
from pynn import Input, Model
from pynn.activations import relu, softmax
from pynn.data import DataLoader
from pynn.interop import save_safetensors
from pynn.layers import Conv2d, Dense, Flatten, MaxPool2d
from pynn.losses import categorical_cross_entropy
from pynn.optimizers import Adam

p = parser(__doc__, epochs=1, batch_size=32, lr=2e-3)
p.add_argument("--onnx", default="mnist_cnn.onnx",
               help="where to write the ONNX model (default: %(default)s)")
p.add_argument("--weights", default="mnist_cnn.safetensors",
               help="where to write the weights as safetensors (default: %(default)s)")
args = p.parse_args()

pynn.manual_seed(args.seed)
(train_x, train_y), (test_x, test_y) = load_mnist(args)     # x: (n, 1, 28, 28)

x_in = Input((1, 28, 28))
x = Conv2d(1, 32, 3, padding=1, activation=relu)(x_in)
x = MaxPool2d(2)(x)
x = Conv2d(32, 64, 3, padding=1, activation=relu)(x)
x = MaxPool2d(2)(x)
x = Flatten()(x)
x = Dense(64 * 7 * 7, 128, relu)(x)
x = Dense(128, 10, softmax)(x)
model = Model(x_in, x)

opt = Adam(args.lr)
loader = DataLoader(train_x, train_y, batch_size=args.batch_size, shuffle=True, seed=args.seed)
for epoch in range(args.epochs):
    bar = tqdm(loader, desc=f"epoch {epoch + 1}/{args.epochs}")
    for xb, yb in bar:
        loss = categorical_cross_entropy(model(xb), yb)
        loss.zero_grad()
        loss.backward()
        opt.update(model.parameters)
        bar.set_postfix(loss=f"{loss.item():.4f}", refresh=False)

pynn_acc = accuracy(model, test_x, test_y)
pynn.onnx.export(model, args.onnx)                    # opset 17, free batch dimension
save_safetensors(model, args.weights)
print(f"wrote {args.onnx} and {args.weights}")

import onnxruntime as ort  # noqa: E402  (an optional extra: imported once it is needed)

session = ort.InferenceSession(args.onnx, providers=["CPUExecutionProvider"])
name = session.get_inputs()[0].name                   # "input_0"
start = time.perf_counter()
onnx_probs = np.concatenate([session.run(None, {name: test_x[i:i + 1000]})[0]
                             for i in range(0, len(test_x), 1000)])
onnx_sec = time.perf_counter() - start
onnx_acc = float(np.mean(onnx_probs.argmax(axis=1) == test_y))
max_diff = float(np.abs(onnx_probs - model.predict(test_x, batch_size=1000)).max())
print(f"final: epochs={args.epochs} pynn_test_acc={pynn_acc:.4f} onnx_test_acc={onnx_acc:.4f} "
      f"max_abs_diff={max_diff:.2e} onnx_sec={onnx_sec:.3f} onnx={args.onnx} "
      f"weights={args.weights}")
