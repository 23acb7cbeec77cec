"""Write the notebooks of this folder from the cells below (run it after editing them).

    python notebooks/build_notebooks.py

The .ipynb files are generated, without outputs, so that a review reads this file and a diff of
a notebook stays small. tests/test_notebooks.py checks that the committed notebooks match this
script and runs each of them end to end on a few samples (the PYNN_NB_* variables below).
"""
import sys
import textwrap
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).resolve().parent


def md(text):
    return new_markdown_cell(textwrap.dedent(text).strip())


def code(text):
    return new_code_cell(textwrap.dedent(text).strip())


# ------------------------------------------------------------------------------- shared cells
def parameters(epochs, extra=""):
    lines = [
        "# Parameters: edit them here or set the environment variables before starting Jupyter",
        "import os",
        "",
        f'EPOCHS = int(os.environ.get("PYNN_NB_EPOCHS", {epochs}))',
        'LIMIT = int(os.environ.get("PYNN_NB_LIMIT", 0)) or None   # None: all the samples',
        'DATA_DIR = os.environ.get("PYNN_DATA_DIR")  # None: ~/.cache/pynn, downloaded if missing',
        "SEED = 0",
        "REFRESH = 1.0   # seconds between progress bar updates (keeps saved outputs small)",
    ]
    return new_code_cell("\n".join(lines + ([extra] if extra else [])))


LOAD_MNIST = '''
    (train_x, train_y), (test_x, test_y) = mnist(flatten={flatten}, data_dir=DATA_DIR)
    if LIMIT:
        train_x, train_y, test_x, test_y = (train_x[:LIMIT], train_y[:LIMIT],
                                            test_x[:LIMIT], test_y[:LIMIT])
    print("train:", train_x.shape, train_x.dtype, train_y.shape, train_y.dtype)
    print("test: ", test_x.shape, test_x.dtype, test_y.shape, test_y.dtype)
    print("pixel values from", train_x.min(), "to", train_x.max())
'''

SHOW_DIGITS = '''
    fig, axes = plt.subplots(2, 10, figsize=(12, 2.8))
    for ax, image, label in zip(axes.flat, train_x, train_y):
        ax.imshow(image.reshape(28, 28), cmap="gray_r")
        ax.set_title(str(label))
        ax.axis("off")
    plt.suptitle("the first 20 training images and their labels")
    plt.show()

    plt.figure(figsize=(6, 2.5))
    plt.bar(range(10), np.bincount(train_y, minlength=10))
    plt.xticks(range(10))
    plt.title("training images per digit")
    plt.show()
'''

TRAIN_LOOP = '''
    opt = Adam(LR)
    schedule = CosineAnnealingLR(opt, T_max=EPOCHS)   # the learning rate glides from LR to 0
    loader = DataLoader(train_x, train_y, batch_size=BATCH_SIZE, shuffle=True, seed=SEED)
    history = {"step_loss": [], "train_acc": [], "test_acc": []}

    for epoch in range(EPOCHS):
        seen = correct = total_loss = 0
        bar = tqdm(loader, desc=f"epoch {epoch + 1}/{EPOCHS}", mininterval=REFRESH)
        for xb, yb in bar:
            pred = model(xb)                             # forward: (batch, 10) probabilities
            loss = categorical_cross_entropy(pred, yb)   # a scalar Tensor
            loss.zero_grad()                             # forget the previous step's gradients
            loss.backward()                              # gradients of every parameter
            opt.update(model.parameters)                 # one Adam step

            seen += len(yb)
            total_loss += loss.item() * len(yb)
            correct += int((pred.numpy().argmax(axis=1) == yb.numpy()).sum())
            history["step_loss"].append(loss.item())
            bar.set_postfix(loss=f"{total_loss / seen:.4f}", acc=f"{correct / seen:.4f}",
                            refresh=False)                   # drawn at the bar's own pace
        schedule.step()
        history["train_acc"].append(correct / seen)
        history["test_acc"].append(accuracy(test_x, test_y))
        print(f"epoch {epoch + 1}: train accuracy {history['train_acc'][-1]:.4f}, "
              f"test accuracy {history['test_acc'][-1]:.4f}")
'''

ACCURACY_FN = '''
    def accuracy(x, y):
        """Share of the samples whose most probable class is the label."""
        probs = model.predict(x, batch_size=1000)    # eval mode, no graph recorded
        return float(np.mean(probs.argmax(axis=1) == y))
'''

CURVES = '''
    steps = np.arange(1, len(history["step_loss"]) + 1)
    window = max(1, min(50, len(steps) // 10))
    smooth = np.convolve(history["step_loss"], np.ones(window) / window, mode="valid")
    epochs = np.arange(1, EPOCHS + 1)

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4))
    ax1.plot(steps, history["step_loss"], alpha=0.3, label="each step")
    ax1.plot(steps[window - 1:], smooth, label=f"mean of {window} steps")
    ax1.set_xlabel("step")
    ax1.set_ylabel("cross-entropy loss")
    ax1.set_yscale("log")
    ax1.legend()
    ax2.plot(epochs, history["train_acc"], "o-", label="train (running, during the epoch)")
    ax2.plot(epochs, history["test_acc"], "o-", label="test (after the epoch)")
    ax2.set_xlabel("epoch")
    ax2.set_ylabel("accuracy")
    ax2.set_xticks(epochs)
    ax2.legend()
    plt.show()
'''

MISTAKES = '''
    probs = model.predict(test_x, batch_size=1000)
    predicted = probs.argmax(axis=1)
    wrong = np.flatnonzero(predicted != test_y)
    print(f"test accuracy: {np.mean(predicted == test_y):.4f} "
          f"({len(wrong)} mistakes out of {len(test_y)})")

    confusion = np.zeros((10, 10), dtype=int)
    np.add.at(confusion, (test_y, predicted), 1)
    print("confusion matrix (rows: true digit, columns: predicted digit)")
    print(confusion)

    if len(wrong):
        shown = wrong[:24]
        fig, axes = plt.subplots(3, 8, figsize=(12, 5.2))
        for ax in axes.flat:
            ax.axis("off")
        for ax, i in zip(axes.flat, shown):
            ax.imshow(test_x[i].reshape(28, 28), cmap="gray_r")
            ax.set_title(f"{test_y[i]} -> {predicted[i]} ({probs[i, predicted[i]]:.0%})",
                         fontsize=9)
        plt.suptitle("misclassified test digits: true -> predicted (confidence)")
        plt.show()
    else:
        print("no test digit is misclassified")
'''

SAVE_LOAD = '''
    model.save("{name}.pynn")
    restored = pynn.load_model("{name}.pynn")
    same = np.allclose(restored.predict(test_x[:100]), model.predict(test_x[:100]), atol=1e-6)
    print(restored, "- same predictions as the trained model:", same)
'''


# ------------------------------------------------------------------------------- moons
def moons():
    return [
        md('''
        # Two moons with a small MLP

        The "hello world" of neural networks, as in micrograd's demo: 100 points in the plane
        form two interleaving half circles, and a network with two hidden layers of 16 units
        learns to tell them apart. Along the way we see every piece of a pynn program:

        1. make the data (`pynn.datasets.make_moons`),
        2. build a model the Keras way (`Input`, layers, `Model`),
        3. train it the PyTorch way (`loss.backward()`, `opt.update(model.parameters)`),
        4. look at what it learned.
        '''),
        parameters(200),
        code('''
        import matplotlib.pyplot as plt
        import numpy as np
        from tqdm import tqdm

        import pynn
        from pynn import Input, Model
        from pynn.activations import relu
        from pynn.data import DataLoader
        from pynn.datasets import make_moons
        from pynn.layers import Dense
        from pynn.losses import hinge
        from pynn.optimizers import SGD

        pynn.manual_seed(SEED)   # the same initial weights on every run
        '''),
        md('''
        ## The data

        `make_moons` returns the points `X` (float32, shape `(100, 2)`) and their classes `y`
        (0 or 1). A little noise makes the task less trivial.
        '''),
        code('''
        X, y = make_moons(100, noise=0.1, seed=SEED)
        print(X.shape, X.dtype, y.shape, y.dtype, "class counts:", np.bincount(y))

        plt.figure(figsize=(5, 4))
        plt.scatter(X[:, 0], X[:, 1], c=y, cmap="Spectral", edgecolors="k")
        plt.title("two moons: class 0 and class 1")
        plt.show()
        '''),
        md('''
        ## The model

        `Input((2,))` stands for a batch of points with 2 coordinates; the batch size is left
        free. Each `Dense(in, out, activation)` layer is called on the tensor before it, and
        `Model(inputs, outputs)` captures the graph between them and compiles it once.

        The last layer has a single unit and no activation: it gives each point a *score*,
        positive for class 1 and negative for class 0.
        '''),
        code('''
        x_in = Input((2,))
        x = Dense(2, 16, relu)(x_in)
        x = Dense(16, 16, relu)(x)
        x = Dense(16, 1)(x)
        model = Model(x_in, x)
        model.summary();   # the ";" stops Jupyter from echoing the returned table
        '''),
        md('''
        ## The loss and the optimizer

        The hinge (max-margin) loss, as in an SVM: with the label mapped to $t = \\pm 1$,
        $\\text{loss} = \\text{mean}(\\max(0, 1 - t \\cdot \\text{score}))$. A point costs nothing
        once it is on the right side with a margin of 1, so the network focuses on the points
        near the boundary. `hinge` maps labels 0/1 to -1/+1 itself.

        Plain SGD with a learning rate decaying linearly from 1.0 to 0.1, and a small weight
        decay (micrograd's `1e-4 * sum(p**2)` term) that keeps the weights small.
        '''),
        code('''
        opt = SGD(1.0, weight_decay=2e-4)
        loader = DataLoader(X, y.reshape(-1, 1), batch_size=100, shuffle=True, seed=SEED)
        history = {"loss": [], "acc": []}

        bar = tqdm(range(EPOCHS), desc="moons", mininterval=REFRESH)
        for epoch in bar:
            opt.lr = 1.0 * (1 - 0.9 * epoch / EPOCHS)
            for xb, yb in loader:                # one batch of all 100 points
                score = model(xb)                # forward pass: (100, 1) scores
                loss = hinge(score, yb)
                loss.zero_grad()                 # clear the gradients of the last step
                loss.backward()                  # compute d(loss)/d(parameter) for every weight
                opt.update(model.parameters)     # and take one SGD step
            acc = float(np.mean((model.predict(X)[:, 0] > 0) == y))
            history["loss"].append(loss.item())
            history["acc"].append(acc)
            bar.set_postfix(loss=f"{loss.item():.4f}", acc=f"{acc:.3f}", refresh=False)

        print(f"training accuracy after {EPOCHS} epochs: {history['acc'][-1]:.2%}")
        '''),
        md('''
        ## Loss and accuracy during training
        '''),
        code('''
        fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 3.5))
        ax1.plot(history["loss"])
        ax1.set_xlabel("epoch")
        ax1.set_ylabel("hinge loss")
        ax1.set_yscale("symlog", linthresh=1e-3)
        ax2.plot(history["acc"])
        ax2.set_xlabel("epoch")
        ax2.set_ylabel("training accuracy")
        plt.show()
        '''),
        md('''
        ## The decision boundary

        `model.predict` runs the model on any number of points (in eval mode, without recording
        a graph) and returns a NumPy array. Scoring a fine grid of points colours the plane by
        the class the network would give.
        '''),
        code('''
        xx, yy = np.meshgrid(np.linspace(X[:, 0].min() - 1, X[:, 0].max() + 1, 250),
                             np.linspace(X[:, 1].min() - 1, X[:, 1].max() + 1, 250))
        grid = np.stack([xx.ravel(), yy.ravel()], axis=1).astype(np.float32)
        score = model.predict(grid).reshape(xx.shape)

        plt.figure(figsize=(6, 5))
        plt.contourf(xx, yy, score > 0, cmap="Spectral", alpha=0.8)
        plt.scatter(X[:, 0], X[:, 1], c=y, cmap="Spectral", edgecolors="k")
        plt.title("decision boundary of the 2-16-16-1 MLP")
        plt.show()
        '''),
        md('''
        ## Try it

        * More noise (`noise=0.3`) or more points (`make_moons(1000, ...)`).
        * Another dataset: `make_circles`, or `make_spiral` with 3 classes (then a softmax
          output and `categorical_cross_entropy`, as in the MNIST notebooks).
        * The same script from the command line: `python examples/moons_mlp.py --out moons.png`.
        '''),
    ]


# ------------------------------------------------------------------------------- MNIST MLP
def mnist_mlp():
    return [
        md('''
        # Handwritten digits with an MLP

        MNIST: 70,000 grey 28x28 images of handwritten digits, 60,000 to train on and 10,000 to
        test on. We train the network of the original pynn, a multilayer perceptron
        784-256-128-32-10, and reach about 98% test accuracy in 10 epochs.

        The parameters below keep the defaults small enough for a laptop; `LIMIT` uses only the
        first samples (the tests run this notebook with a few hundred).
        '''),
        parameters(10, extra="BATCH_SIZE = 64\nLR = 1e-3"),
        code('''
        import matplotlib.pyplot as plt
        import numpy as np
        from tqdm import tqdm

        import pynn
        from pynn import Input, Model
        from pynn.activations import relu, softmax
        from pynn.data import DataLoader
        from pynn.datasets import mnist
        from pynn.layers import Dense
        from pynn.losses import categorical_cross_entropy
        from pynn.optimizers import Adam, CosineAnnealingLR

        pynn.manual_seed(SEED)
        '''),
        md('''
        ## The data

        `mnist(flatten=True)` reads the original IDX files (downloading them to
        `~/.cache/pynn` the first time, checksum-verified) and gives each image as a row of 784
        float32 pixels in [0, 1], with int64 labels.
        '''),
        code(LOAD_MNIST.format(flatten=True)),
        code(SHOW_DIGITS),
        md('''
        ## The model

        Four `Dense` layers. The hidden ones use `relu`; the last one has 10 units and a
        `softmax`, so each row of the output is a probability for each digit. `summary()` lists
        the layers, their output shapes and their parameter counts.
        '''),
        code('''
        x_in = Input((784,))
        x = Dense(784, 256, relu)(x_in)
        x = Dense(256, 128, relu)(x)
        x = Dense(128, 32, relu)(x)
        x = Dense(32, 10, softmax)(x)
        model = Model(x_in, x)
        model.summary();   # the ";" stops Jupyter from echoing the returned table
        '''),
        md('''
        ## Training

        `DataLoader` shuffles the samples each epoch and hands them out in batches of Tensors.
        For each batch: forward pass, cross-entropy between the probabilities and the labels
        (`categorical_cross_entropy` computes it from the logits behind the softmax, so it
        stays exact), backward pass, and one Adam step. The bar shows the running loss and
        accuracy of the epoch; after each epoch we measure the test accuracy.
        '''),
        code(ACCURACY_FN),
        code(TRAIN_LOOP),
        md('''
        ## Loss and accuracy curves
        '''),
        code(CURVES),
        md('''
        ## Where it goes wrong

        The confusion matrix counts, for each true digit, what the model predicted; then the
        first misclassified test digits, many of which a human would hesitate on too.
        '''),
        code(MISTAKES),
        md('''
        ## Save and load

        `model.save` writes the architecture (JSON) and the weights (NumPy arrays) to one file;
        `pynn.load_model` rebuilds the model without executing any code from the file.
        '''),
        code(SAVE_LOAD.format(name="mnist_mlp")),
        md('''
        ## Try it

        * Train longer (`EPOCHS = 20`) or with a bigger batch (`BATCH_SIZE = 128`).
        * Add `Dropout(0.2)` after the hidden layers (`from pynn.layers import Dropout`).
        * A convolutional network does better on images: see `mnist_cnn.ipynb`.
        * The same as a script: `python examples/mnist_mlp.py`.
        '''),
    ]


# ------------------------------------------------------------------------------- MNIST CNN
GRAPH_CELL = '''
    # The computation graph of the model: Graphviz DOT text from pynn.graph.draw.
    import shutil

    from pynn import graph

    if hasattr(graph, "draw"):
        dot = graph.draw(model)
        print(dot[:500])
        if shutil.which("dot"):                      # Graphviz is installed: draw the picture
            from IPython.display import SVG, display
            graph.draw(model, "mnist_cnn_graph.svg")
            display(SVG(filename="mnist_cnn_graph.svg"))
        else:
            print("(install Graphviz, e.g. apt install graphviz, to see it as a picture)")
    else:
        print("this version of pynn has no pynn.graph.draw yet")
'''


def mnist_cnn():
    return [
        md('''
        # Handwritten digits with a convolutional network

        The same MNIST digits as in `mnist_mlp.ipynb`, now with a small convolutional network:
        two blocks of `Conv2d` + `MaxPool2d`, then two `Dense` layers. Convolutions look at
        small neighbourhoods of pixels with the same weights everywhere in the image, which
        suits pictures: this network passes 99% test accuracy in 3 epochs.

        With the full data one epoch takes a few minutes on a laptop CPU; set `LIMIT` to try
        things quickly.
        '''),
        parameters(3, extra="BATCH_SIZE = 32\nLR = 2e-3"),
        code('''
        import matplotlib.pyplot as plt
        import numpy as np
        from tqdm import tqdm

        import pynn
        from pynn import Input, Model
        from pynn.activations import relu, softmax
        from pynn.data import DataLoader
        from pynn.datasets import mnist
        from pynn.layers import Conv2d, Dense, Flatten, MaxPool2d
        from pynn.losses import categorical_cross_entropy
        from pynn.optimizers import Adam, CosineAnnealingLR

        pynn.manual_seed(SEED)
        '''),
        md('''
        ## The data

        This time the images keep their shape: `(n, 1, 28, 28)`, channels first (NCHW, as in
        PyTorch), float32 in [0, 1].
        '''),
        code(LOAD_MNIST.format(flatten=False)),
        code(SHOW_DIGITS),
        md('''
        ## The model

        * `Conv2d(1, 32, 3, padding=1, activation=relu)`: 32 filters of 3x3 pixels slide over
          the image; `padding=1` keeps it 28x28. Output: 32 feature maps.
        * `MaxPool2d(2)` keeps the largest value of each 2x2 square: 28x28 becomes 14x14.
        * A second block with 64 filters over the 32 maps, pooled to 7x7.
        * `Flatten` turns the 64x7x7 maps into one vector of 3136 numbers per image, and two
          `Dense` layers classify it.
        '''),
        code('''
        x_in = Input((1, 28, 28))
        x = Conv2d(1, 32, 3, padding=1, activation=relu)(x_in)
        x = MaxPool2d(2)(x)
        x = Conv2d(32, 64, 3, padding=1, activation=relu)(x)
        x = MaxPool2d(2)(x)
        x = Flatten()(x)
        x = Dense(64 * 7 * 7, 128, relu)(x)
        x = Dense(128, 10, softmax)(x)
        model = Model(x_in, x)
        model.summary();   # the ";" stops Jupyter from echoing the returned table
        '''),
        md('''
        `Model` recorded the graph of operations between the input and the output when the
        layers were called on `x_in`. Here it is, when the graph drawer is available:
        '''),
        code(GRAPH_CELL),
        md('''
        ## Training

        The loop is the same as for the MLP: forward, loss, `backward()`, one Adam step per
        batch, and a cosine schedule that lowers the learning rate to 0 by the last epoch.
        '''),
        code(ACCURACY_FN),
        code(TRAIN_LOOP),
        md('''
        ## Loss and accuracy curves
        '''),
        code(CURVES),
        md('''
        ## What the first layer learned

        The 32 filters of the first convolution, each a 3x3 patch of weights (blue negative,
        red positive), and what they make of one digit: edge and stroke detectors of various
        directions.
        '''),
        code('''
        conv1 = model.layers[0]
        weights = conv1.weight.numpy()[:, 0]            # (32, 3, 3)
        fig, axes = plt.subplots(2, 16, figsize=(12, 1.8))
        for ax, w in zip(axes.flat, weights):
            ax.imshow(w, cmap="bwr", vmin=-abs(weights).max(), vmax=abs(weights).max())
            ax.axis("off")
        plt.suptitle("first-layer filters")
        plt.show()

        with pynn.no_grad():                              # a layer also runs on its own
            maps = conv1(test_x[:1]).numpy()[0]             # (32, 28, 28)
        fig, axes = plt.subplots(2, 16, figsize=(12, 1.8))
        for ax, m in zip(axes.flat, maps):
            ax.imshow(m, cmap="gray_r")
            ax.axis("off")
        plt.suptitle(f"the 32 feature maps of the first test digit ({test_y[0]})")
        plt.show()
        '''),
        md('''
        ## Where it goes wrong
        '''),
        code(MISTAKES),
        md('''
        ## Save and load
        '''),
        code(SAVE_LOAD.format(name="mnist_cnn")),
        md('''
        ## Try it

        * `BatchNorm2d(32)` after the first convolution, or `Dropout(0.25)` before the last
          layer (`from pynn.layers import BatchNorm2d, Dropout`).
        * Fashion-MNIST: `from pynn.datasets import fashion_mnist`, same shapes, harder.
        * The same as a script: `python examples/mnist_cnn.py`.
        '''),
    ]

# ------------------------------------------------------------------------------- sequences
def seq_mnist_lstm():
    return [
        md("""
        # MNIST read row by row by an LSTM

        A recurrent network reads each digit as a sequence: 28 time steps, one image row of 28
        pixels per step. An `LSTM` carries a memory (its cell state) from row to row; its last
        output, after the bottom row, goes to a `Dense` softmax classifier. With 128 units it
        passes 98% test accuracy in 5 epochs.

        The whole sequence runs as one op: one matrix product projects all 28 rows at once,
        then each step is a matrix product for the recurrent part and one fused kernel for the
        gates. Set `LIMIT` to try things quickly.
        """),
        parameters(5, extra="BATCH_SIZE = 64\nLR = 2e-3\nHIDDEN = 128"),
        code("""
        import matplotlib.pyplot as plt
        import numpy as np
        from tqdm import tqdm

        import pynn
        from pynn import Input, Model
        from pynn.activations import softmax
        from pynn.data import DataLoader
        from pynn.datasets import mnist
        from pynn.layers import LSTM, Dense
        from pynn.losses import categorical_cross_entropy
        from pynn.optimizers import Adam, CosineAnnealingLR

        pynn.manual_seed(SEED)
        """),
        md("""
        ## The data

        The images come as `(n, 1, 28, 28)`; the LSTM wants `(n, time, features)`, so the
        channel axis goes: `(n, 28, 28)`, 28 steps of 28 pixels.
        """),
        code(LOAD_MNIST.format(flatten=False) + """
    train_x, test_x = train_x.reshape(-1, 28, 28), test_x.reshape(-1, 28, 28)
    print("as sequences:", train_x.shape)
"""),
        code(SHOW_DIGITS),
        md("""
        ## The model

        `LSTM(HIDDEN)` is the Keras form (one size given: the number of units; the input size,
        28, is read from the input). It returns the last step's output, `(None, HIDDEN)`.
        `LSTM(28, HIDDEN)` would be the PyTorch form, which returns the whole sequence.
        """),
        code("""
        x_in = Input((28, 28))                 # 28 steps of 28 pixels
        h = LSTM(HIDDEN)(x_in)                 # (None, HIDDEN): the output after the last row
        y = Dense(HIDDEN, 10, softmax)(h)
        model = Model(x_in, y)
        model.summary();   # the ";" stops Jupyter from echoing the returned table
        """),
        md("""
        ## Training
        """),
        code(ACCURACY_FN),
        code(TRAIN_LOOP),
        md("""
        ## Loss and accuracy curves
        """),
        code(CURVES),
        md("""
        ## What the LSTM sees, row by row

        The same LSTM, in the PyTorch form with `return_sequences` (the default there), gives
        its output after every row. Fed the trained weights, the Dense layer then tells how the
        prediction firms up as the rows come in.
        """),
        code("""
        lstm, dense = model.layers
        every_step = LSTM(28, HIDDEN)          # PyTorch form: the whole sequence
        for name in lstm.param_names:
            getattr(every_step, name).data[...] = getattr(lstm, name).data
        with pynn.no_grad():
            steps = every_step(test_x[:1])                       # (1, 28, HIDDEN)
            probs = dense(steps.reshape(28, HIDDEN)).numpy()     # (28, 10)
        fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
        ax1.imshow(test_x[0], cmap="gray_r")
        ax1.set_title(f"test digit ({test_y[0]})")
        ax1.axis("off")
        ax2.imshow(probs.T, aspect="auto", cmap="viridis")
        ax2.set_xlabel("rows read")
        ax2.set_ylabel("digit")
        ax2.set_yticks(range(10))
        ax2.set_title("predicted probabilities after each row")
        plt.show()
        """),
        md("""
        ## Where it goes wrong
        """),
        code(MISTAKES),
        md("""
        ## Save and load
        """),
        code(SAVE_LOAD.format(name="seq_mnist_lstm")),
        md("""
        ## Try it

        * `GRU(HIDDEN)` or `SimpleRNN(HIDDEN)` instead of the LSTM (`from pynn.layers import
          GRU, SimpleRNN`): the plain RNN struggles with 28 steps.
        * `LSTM(HIDDEN, bidirectional=True)` reads the rows both ways (output `2 * HIDDEN`).
        * The same as a script: `python examples/seq_mnist_lstm.py`.
        """),
    ]


def words_transformer():
    return [
        md("""
        # Inventing English words with a small transformer

        A character-level language model: it reads a word one letter at a time and predicts
        the next letter. Trained on an English word list, it can then make up new words that
        look English. The model is a small GPT-style transformer: token and position
        embeddings, blocks of causal multi-head self-attention and an MLP, each behind a
        `LayerNorm` and with a residual connection.

        Data: `words/american-english` (a Debian word list, see `../shared/data/README.md`),
        filtered to lowercase a-z words of 3 or more letters. `EPOCHS` passes over the
        training words; set `LIMIT` to use fewer words.
        """),
        parameters(3, extra="BATCH_SIZE = 64\nLR = 2e-3\nEMBED, HEADS, LAYERS = 64, 4, 2"),
        code("""
        from pathlib import Path

        import matplotlib.pyplot as plt
        import numpy as np
        from tqdm import tqdm

        import pynn
        from pynn import Input, Model, Tensor
        from pynn.activations import gelu
        from pynn.layers import Dense, Embedding, LayerNorm, MultiHeadAttention
        from pynn.optimizers import AdamW

        pynn.manual_seed(SEED)
        rng = np.random.default_rng(SEED)
        """),
        md("""
        ## The data

        Each word becomes a sequence of character ids, with `.` (id 0) marking both ends:
        the model reads `.` `c` `a` `t` and must predict `c` `a` `t` `.`. Words are padded
        to the longest one; a mask says which positions hold a real next character, and only
        those count in the loss. 10% of the words are held out for validation.
        """),
        code("""
        ALPHABET = ".abcdefghijklmnopqrstuvwxyz"
        VOCAB = len(ALPHABET)
        # DATA_DIR, else the shared data folder beside the repository (from notebooks/)
        folder = Path(DATA_DIR or "../../shared/data")
        lines = (folder / "words" / "american-english").read_text(encoding="utf-8").split()
        words = sorted({w for w in lines if len(w) >= 3 and w.isascii() and w.isalpha()
                        and w.islower()})
        words = [words[i] for i in rng.permutation(len(words))][:LIMIT]
        n_val = len(words) // 10
        train_words, val_words = words[n_val:], words[:n_val]
        BLOCK = max(map(len, words)) + 1
        print(f"{len(train_words)} training and {len(val_words)} validation words, e.g.",
              ", ".join(train_words[:8]), f"; block {BLOCK}")

        def encode(words):
            x = np.zeros((len(words), BLOCK), np.int64)
            y = np.zeros((len(words), BLOCK), np.int64)
            mask = np.zeros((len(words), BLOCK), np.float32)
            for i, w in enumerate(words):
                ids = [ALPHABET.index(c) for c in w]
                x[i, 1:len(ids) + 1] = ids
                y[i, :len(ids)] = ids
                mask[i, :len(ids) + 1] = 1
            return x, y, mask

        train, val = encode(train_words), encode(val_words)
        print("input ", train[0][0], "\\ntarget", train[1][0], "\\nmask  ", train[2][0])

        plt.figure(figsize=(6, 2.5))
        plt.hist([len(w) for w in words], bins=range(3, BLOCK + 1))
        plt.xlabel("letters")
        plt.ylabel("words")
        plt.title("word lengths")
        plt.show()
        """),
        md("""
        ## The model

        `MultiHeadAttention(..., causal=True)` lets position t attend to positions up to t
        only, so the prediction of the next letter never peeks at it. The position embedding
        is an `Embedding` of the positions 0 .. BLOCK-1, added to every word's token vectors.
        """),
        code("""
        ids = Input((BLOCK,))                        # character ids
        x = Embedding(VOCAB, EMBED)(ids)
        x = x + Embedding(BLOCK, EMBED)(Tensor(np.arange(BLOCK)))    # + position
        for _ in range(LAYERS):
            h = LayerNorm(EMBED)(x)
            x = x + MultiHeadAttention(EMBED, HEADS, causal=True)(h)
            h = LayerNorm(EMBED)(x)
            x = x + Dense(4 * EMBED, EMBED)(gelu(Dense(EMBED, 4 * EMBED)(h)))
        logits = Dense(EMBED, VOCAB)(LayerNorm(EMBED)(x))
        model = Model(ids, logits)
        model.summary();   # the ";" stops Jupyter from echoing the returned table
        """),
        md("""
        ## Training

        The loss is the cross-entropy of the real next characters, in nats per character
        (log 27 = 3.30 for a uniform guess). AdamW, with a short warm-up and a cosine decay.
        """),
        code("""
        def masked_cross_entropy(logits, targets, mask):
            onehot = np.zeros(logits.shape, logits.dtype)
            np.put_along_axis(onehot, targets[..., None], 1.0, axis=-1)
            weights = onehot * (mask / mask.sum())[..., None]
            return -(logits.log_softmax(-1) * Tensor(weights)).sum()

        def val_loss():
            with pynn.no_grad():
                model.eval()
                losses = [masked_cross_entropy(model(val[0][i:i + 500]), val[1][i:i + 500],
                                               val[2][i:i + 500]).item() * val[2][i:i + 500].sum()
                          for i in range(0, len(val[0]), 500)]
                model.train()
            return sum(losses) / val[2].sum()

        steps = EPOCHS * len(train[0]) // BATCH_SIZE
        warm = min(100, steps // 10 or 1)
        opt = AdamW(LR, weight_decay=0.01)
        history = {"step": [], "train": [], "val_step": [], "val": []}
        order = np.empty(0, np.int64)
        for step in tqdm(range(steps)):
            if len(order) < BATCH_SIZE:
                order = np.concatenate([order, rng.permutation(len(train[0]))])
            idx, order = order[:BATCH_SIZE], order[BATCH_SIZE:]
            opt.lr = LR * (step + 1) / warm if step < warm else \\
                0.5 * LR * (1 + np.cos(np.pi * (step - warm) / max(1, steps - warm)))
            loss = masked_cross_entropy(model(train[0][idx]), train[1][idx], train[2][idx])
            loss.zero_grad()
            loss.backward()
            opt.update(model.parameters)
            history["step"].append(step + 1)
            history["train"].append(loss.item())
            if (step + 1) % max(1, steps // 10) == 0 or step + 1 == steps:
                history["val_step"].append(step + 1)
                history["val"].append(val_loss())
        print(f"validation loss after {steps} steps: {history['val'][-1]:.4f} nats/char")
        """),
        md("""
        ## Loss curve
        """),
        code("""
        window = max(1, min(50, len(history["train"]) // 10))
        smooth = np.convolve(history["train"], np.ones(window) / window, mode="valid")
        plt.figure(figsize=(8, 4))
        plt.plot(history["step"], history["train"], alpha=0.3, label="training batch")
        plt.plot(history["step"][window - 1:], smooth, label=f"mean of {window} steps")
        plt.plot(history["val_step"], history["val"], "o-", label="validation")
        plt.axhline(np.log(VOCAB), color="gray", ls=":", label="uniform guess")
        plt.xlabel("step")
        plt.ylabel("nats per character")
        plt.legend()
        plt.show()
        """),
        md("""
        ## New words

        Sampling: start from `.`, draw the next letter from the model's predicted
        distribution, append it, and repeat until the model writes the closing `.`.
        """),
        code("""
        def sample(n):
            seq = np.zeros((n, BLOCK), np.int64)
            done = np.zeros(n, bool)
            with pynn.no_grad():
                model.eval()
                for t in range(BLOCK - 1):
                    p = model(seq).numpy()[:, t].astype(np.float64)
                    p = np.exp(p - p.max(-1, keepdims=True))
                    p /= p.sum(-1, keepdims=True)
                    nxt = np.array([rng.choice(VOCAB, p=row) for row in p])
                    nxt[done] = 0
                    seq[:, t + 1] = nxt
                    done |= nxt == 0
                    if done.all():
                        break
                model.train()
            return ["".join(ALPHABET[i] for i in row[1:]).split(".")[0] for row in seq]

        new = sample(20)
        known = set(words)
        print("sampled words:", " ".join(f"{w}{'' if w in known else '*'}" for w in new))
        print("(* = not in the word list)")
        """),
        md("""
        What does the model expect as a first letter? Its prediction after the opening `.`,
        beside the first letters of the training words:
        """),
        code("""
        with pynn.no_grad():
            model.eval()
            first = model(np.zeros((1, BLOCK), np.int64)).numpy()[0, 0].astype(np.float64)
            model.train()
        first = np.exp(first - first.max())
        first /= first.sum()
        counts = np.bincount([ALPHABET.index(w[0]) for w in train_words], minlength=VOCAB)
        letters = np.arange(1, VOCAB)
        plt.figure(figsize=(10, 3))
        plt.bar(letters - 0.2, first[1:], 0.4, label="model")
        plt.bar(letters + 0.2, counts[1:] / counts.sum(), 0.4, label="training words")
        plt.xticks(letters, list(ALPHABET[1:]))
        plt.legend()
        plt.title("first letter")
        plt.show()
        """),
        md("""
        ## Save and load
        """),
        code("""
        model.save("words_transformer.pynn")
        restored = pynn.load_model("words_transformer.pynn")
        same = np.allclose(restored.predict(val[0][:100]), model.predict(val[0][:100]),
                           atol=1e-5)
        print(restored, "- same predictions as the trained model:", same)
        """),
        md("""
        ## Try it

        * More `LAYERS`, a wider `EMBED`, more `EPOCHS`: the validation loss keeps falling for
          a while, then the model starts to memorise the training words.
        * The same as a script: `python examples/words_transformer.py`; the same model in
          PyTorch, from the same initial weights: `python benchmarks/words_transformer_torch.py`.
        """),
    ]


# ------------------------------------------------------------------------------- Fashion ResNet
def fashion_resnet():
    return [
        md('''
        # Clothes with a small ResNet

        Fashion-MNIST has the shapes of MNIST (28x28 grey images, 10 classes, 60,000 training
        and 10,000 test images) but shows clothes, and is much harder: a plain MLP stops near
        89%. This notebook builds a small residual network (ResNet): convolutions with
        `padding="same"`, `BatchNorm2d`, shortcut connections that add a block's input to its
        output, and global average pooling instead of a big `Flatten` + `Dense`. The README
        reports what the full run (8 epochs) of the same model as a script reached.

        Set `LIMIT` to try things quickly.
        '''),
        parameters(8, extra="BATCH_SIZE = 128\nLR = 3e-3\nWIDTH = 24  # channels of stage 1"),
        code('''
        import matplotlib.pyplot as plt
        import numpy as np
        from tqdm import tqdm

        import pynn
        from pynn import Input, Model
        from pynn.data import DataLoader
        from pynn.datasets import fashion_mnist
        from pynn.layers import BatchNorm2d, Conv2d, Dense, GlobalAveragePooling2D, MaxPool2d
        from pynn.losses import categorical_cross_entropy
        from pynn.optimizers import Adam, CosineAnnealingLR

        pynn.manual_seed(SEED)
        CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                   "Sneaker", "Bag", "Ankle boot"]
        '''),
        md('''
        ## The data

        Images `(n, 1, 28, 28)`, float32 in [0, 1], and integer labels 0-9.
        '''),
        code(LOAD_MNIST.format(flatten=False).replace("mnist(", "fashion_mnist(")),
        code('''
        fig, axes = plt.subplots(2, 10, figsize=(12, 3))
        for ax, image, label in zip(axes.flat, train_x, train_y):
            ax.imshow(image.reshape(28, 28), cmap="gray_r")
            ax.set_title(CLASSES[label], fontsize=8)
            ax.axis("off")
        plt.suptitle("the first 20 training images and their labels")
        plt.show()
        '''),
        md('''
        ## The model

        * `conv_bn`: a 3x3 `Conv2d` without bias (the BatchNorm after it has its own shift),
          `BatchNorm2d`, ReLU. `Conv2d(channels, 3, padding="same")` gives only the output
          channels and the kernel, Keras-style: the input channels are read from the input, and
          "same" padding keeps the image size. A strided convolution (`stride=2`) halves the
          size; PyTorch, and pynn, accept "same" only with stride 1, so it takes `padding=1`.
        * `residual_block`: two `conv_bn`, and the block's input added to the result before the
          last ReLU (`h + x` on tensors). When the block changes the shape (more channels,
          stride 2), the shortcut is a 1x1 convolution with the same stride.
        * `GlobalAveragePooling2D` averages each of the last 48 feature maps to one number, and
          one `Dense` layer classifies those 48 numbers.
        '''),
        code('''
        def conv_bn(x, channels, stride=1, relu=True):
            padding = "same" if stride == 1 else 1
            x = Conv2d(channels, 3, stride=stride, padding=padding, bias=False,
                       kernel_initializer="he_normal")(x)
            x = BatchNorm2d(channels)(x)
            return x.relu() if relu else x


        def residual_block(x, channels, stride=1):
            h = conv_bn(x, channels, stride)
            h = conv_bn(h, channels, relu=False)
            if stride != 1 or x.shape[1] != channels:      # the shape changes: project x
                x = Conv2d(channels, 1, stride=stride, bias=False)(x)
                x = BatchNorm2d(channels)(x)
            return (h + x).relu()


        x_in = Input((1, 28, 28))
        x = conv_bn(x_in, WIDTH)                         # (24, 28, 28)
        x = MaxPool2d(2)(x)                              # (24, 14, 14)
        x = residual_block(x, WIDTH)                     # (24, 14, 14)
        x = residual_block(x, 2 * WIDTH, stride=2)       # (48, 7, 7)
        x = residual_block(x, 2 * WIDTH)                 # (48, 7, 7)
        x = GlobalAveragePooling2D()(x)                  # (48,)
        x = Dense(2 * WIDTH, 10, "softmax")(x)
        model = Model(x_in, x)
        model.summary();   # the ";" stops Jupyter from echoing the returned table
        '''),
        md('''
        ## Training

        The same loop as in the MNIST notebooks. BatchNorm normalises with the statistics of
        each batch while training and with its running averages in `model.predict` (eval mode).
        '''),
        code(ACCURACY_FN),
        code(TRAIN_LOOP),
        md('''
        ## Loss and accuracy curves
        '''),
        code(CURVES),
        md('''
        ## Which clothes get confused

        Shirts, T-shirts, pullovers and coats look alike at 28x28 pixels: most mistakes are
        between them.
        '''),
        code('''
        probs = model.predict(test_x, batch_size=1000)
        predicted = probs.argmax(axis=1)
        print(f"test accuracy: {np.mean(predicted == test_y):.4f}")
        confusion = np.zeros((10, 10), dtype=int)
        np.add.at(confusion, (test_y, predicted), 1)

        plt.figure(figsize=(7, 6))
        plt.imshow(confusion, cmap="Blues")
        plt.xticks(range(10), CLASSES, rotation=60, ha="right")
        plt.yticks(range(10), CLASSES)
        plt.xlabel("predicted")
        plt.ylabel("true")
        for i in range(10):
            for j in range(10):
                plt.text(j, i, confusion[i, j], ha="center", va="center", fontsize=7,
                         color="white" if confusion[i, j] > confusion.max() / 2 else "black")
        plt.title("confusion matrix on the test set")
        plt.colorbar()
        plt.show()
        '''),
        md('''
        ## Save and load
        '''),
        code(SAVE_LOAD.format(name="fashion_resnet")),
        md('''
        ## Try it

        * A wider network (`WIDTH = 32`) or one more residual block per stage.
        * `Dropout(0.2)` before the last layer, or another activation: `x.silu()`, `x.mish()`.
        * The same as a script: `python examples/fashion_resnet.py`.
        '''),
    ]


# ------------------------------------------------------------------------------- transfer learning
def transfer_fashion():
    return [
        md("""
        # Transfer learning: from digits to clothes

        A CNN encoder learns to see strokes on MNIST; then, frozen, it feeds a new head that
        learns Fashion-MNIST; then its last block is unfrozen and fine-tuned with the head. Each
        stage is Keras's `compile` / `fit` / `evaluate`, and we print the test accuracy after
        each. The same as a script: `python examples/transfer_fashion.py`.
        """),
        parameters(2, extra="BATCH_SIZE = 64\nLR = 1e-3"),
        code("""
        import matplotlib.pyplot as plt
        import numpy as np

        import pynn
        from pynn import Input, Model
        from pynn.datasets import fashion_mnist, mnist
        from pynn.layers import Conv2d, Dense, Dropout, Flatten, MaxPool2d
        from pynn.optimizers import Adam

        pynn.manual_seed(SEED)


        def load(fn):
            (train_x, train_y), (test_x, test_y) = fn(data_dir=DATA_DIR)
            if LIMIT:
                train_x, train_y, test_x, test_y = (train_x[:LIMIT], train_y[:LIMIT],
                                                    test_x[:LIMIT], test_y[:LIMIT])
            return (train_x, train_y), (test_x, test_y)


        (mx, my), (mtx, mty) = load(mnist)
        (fx, fy), (ftx, fty) = load(fashion_mnist)
        print("MNIST", mx.shape, "Fashion-MNIST", fx.shape)
        """),
        md("""
        ## The encoder, a Model of its own

        Two convolution blocks turn an image into 1568 features. As a `Model`, it is a layer
        that other models call: its weights are shared by every model built on it.
        """),
        code("""
        image = Input((1, 28, 28), name="image")
        h = Conv2d(1, 16, 3, padding=1, activation="relu", name="block1_conv")(image)
        h = MaxPool2d(2, name="block1_pool")(h)
        h = Conv2d(16, 32, 3, padding=1, activation="relu", name="block2_conv")(h)
        h = MaxPool2d(2, name="block2_pool")(h)
        encoder = Model(image, Flatten(name="features")(h), name="encoder")
        encoder.summary();   # the ";" stops Jupyter from echoing the returned table
        """),
        md("## Stage 1: digits"),
        code("""
        x_in = Input((1, 28, 28))
        digits = Model(x_in, Dense(32 * 7 * 7, 10, "softmax", name="digit_head")(encoder(x_in)))
        digits.compile(optimizer=Adam(LR), loss="sparse_categorical_crossentropy",
                       metrics=["accuracy"])
        h1 = digits.fit(mx, my, batch_size=BATCH_SIZE, epochs=EPOCHS, verbose=1)
        mnist_acc = digits.evaluate(mtx, mty, verbose=0, return_dict=True)["accuracy"]
        print(f"stage 1: MNIST test accuracy {mnist_acc:.4f}")
        """),
        md("""
        ## Stage 2: clothes, with the encoder frozen

        `encoder.trainable = False` takes effect at the next call: its weights get no gradient
        and leave `model.parameters`, the list the optimizer updates.
        """),
        code("""
        encoder.trainable = False
        f_in = Input((1, 28, 28))
        hidden = Dense(32 * 7 * 7, 128, "relu", name="clothes_hidden")(encoder(f_in))
        clothes = Model(f_in, Dense(128, 10, "softmax", name="clothes_head")(Dropout(0.25)(hidden)))
        before = [p.data.copy() for p in encoder.weights]
        clothes.compile(optimizer=Adam(LR), loss="sparse_categorical_crossentropy",
                        metrics=["accuracy"])
        print(f"{sum(p.data.size for p in clothes.parameters):,} of "
              f"{sum(p.data.size for p in clothes.weights):,} weights train")
        h2 = clothes.fit(fx, fy, batch_size=BATCH_SIZE, epochs=EPOCHS, verbose=1)
        frozen_acc = clothes.evaluate(ftx, fty, verbose=0, return_dict=True)["accuracy"]
        unchanged = all((a == p.data).all() for a, p in zip(before, encoder.weights))
        print(f"stage 2: Fashion-MNIST test accuracy {frozen_acc:.4f},",
              f"encoder unchanged: {unchanged}")
        """),
        md("## Stage 3: unfreeze the last block, fine-tune at a tenth of the learning rate"),
        code("""
        encoder.get_layer("block2_conv").trainable = True
        clothes.compile(optimizer=Adam(LR / 10), loss="sparse_categorical_crossentropy",
                        metrics=["accuracy"])
        h3 = clothes.fit(fx, fy, batch_size=BATCH_SIZE, epochs=EPOCHS, verbose=1)
        tuned_acc = clothes.evaluate(ftx, fty, verbose=0, return_dict=True)["accuracy"]
        print(f"stage 3: Fashion-MNIST test accuracy {tuned_acc:.4f}")

        plt.figure(figsize=(6, 3))
        losses = h2.history["loss"] + h3.history["loss"]
        plt.plot(range(1, len(losses) + 1), losses, marker="o")
        plt.axvline(len(h2.history["loss"]) + 0.5, color="grey", linestyle="--")
        plt.xlabel("epoch (frozen | fine-tuned)")
        plt.ylabel("training loss")
        plt.title("Fashion-MNIST head")
        plt.show()

        plt.figure(figsize=(5, 3))
        plt.bar(["MNIST", "frozen", "fine-tuned"], [mnist_acc, frozen_acc, tuned_acc])
        plt.ylabel("test accuracy")
        plt.show()
        """),
        md("""
        ## Saving

        The whole model saves in one file, the nested encoder included; loading gives the same
        predictions.
        """),
        code("""
        clothes.save("transfer_fashion.pynn")
        again = pynn.load_model("transfer_fashion.pynn")
        same = np.array_equal(again.predict(ftx[:100]), clothes.predict(ftx[:100]))
        print("same predictions as the trained model:", same)
        """),
    ]


# ------------------------------------------------------------------------------- engine tour
def engine_tour():
    return [
        md("""
        # A tour of the engine, executed

        The companion of `docs/how-pynn-works.md`: a tiny expression and its graph, `backward()`
        stepped through by hand and checked against `torch.autograd`, a two-layer Model compiled
        into a plan whose steps and buffers we print, and eager against compiled on the same MLP.
        """),
        parameters(1),
        code("""
        import shutil
        import time

        import numpy as np
        from IPython.display import SVG, display

        import pynn
        from pynn import Input, Model, Tensor
        from pynn.graph import draw, walk
        from pynn.layers import Dense
        from pynn.ops.base import unbroadcast

        pynn.manual_seed(SEED)


        def show(tensor_or_model, **kw):
            # the picture when Graphviz's dot is installed, else the first lines of its source
            if shutil.which("dot"):
                display(SVG(draw(tensor_or_model, "picture.svg", **kw) and "picture.svg"))
            else:
                print("\\n".join(draw(tensor_or_model, **kw).splitlines()[:12]), "\\n...")
        """),
        md("""
        ## 1. A tiny expression

        Every op on tensors that require grad records a node: its `grad_fn`, holding the op and
        its input tensors.
        """),
        code("""
        x = Tensor.randn(4, 3, requires_grad=True)
        w = Tensor.randn(4, 3, requires_grad=True)
        b = Tensor.zeros(3, requires_grad=True)          # broadcast over the 4 rows
        y = (x * w + b).relu().sum()
        print(y, y.grad_fn, [t.grad_fn for t in y.grad_fn.inputs])
        show(y)
        """),
        md("""
        ## 2. backward(), by hand

        `walk` orders the graph so that each tensor comes after what it was made from. Going
        through it in reverse, each op turns its output's gradient into its inputs'
        gradients; `unbroadcast` sums a gradient back to its input's shape (the bias `b` gets
        the sum over the 4 rows). This is what `pynn.autograd.backward` does.
        """),
        code("""
        order = walk([y])
        grads = {id(y): np.ones_like(y.data)}
        by_hand = {}
        for t in reversed(order):
            g = grads.pop(id(t), None)
            if g is None:
                continue
            if t.grad_fn is None:                        # a leaf: its gradient is done
                by_hand[id(t)] = g
                continue
            print(f"{t.grad_fn.name():14s} output {tuple(t.shape)} -> inputs",
                  [tuple(p.shape) for p in t.grad_fn.inputs])
            for parent, pg in zip(t.grad_fn.inputs, t.grad_fn.op.backward(g)):
                if pg is not None and parent.requires_grad:
                    pg = unbroadcast(pg, parent.shape)
                    grads[id(parent)] = grads.get(id(parent), 0) + pg

        y = (x * w + b).relu().sum()                     # the same graph, fresh nodes
        y.backward()
        for t in (x, w, b):
            assert np.allclose(by_hand[id(t)], t.grad.data)
        print("by hand == backward():", True)
        """),
        md("""
        The same numbers from PyTorch's autograd (PyTorch is only a test dependency of pynn; the
        cell says so if it is not installed):
        """),
        code("""
        try:
            import torch
        except ImportError:
            print("torch is not installed: pip install torch to compare")
        else:
            tx, tw, tb = (torch.tensor(t.data, requires_grad=True) for t in (x, w, b))
            (tx * tw + tb).relu().sum().backward()
            for name, t, tt in (("x", x, tx), ("w", w, tw), ("b", b, tb)):
                diff = float(np.abs(t.grad.data - tt.grad.numpy()).max())
                print(name, "max |pynn - torch| =", diff)
        """),
        md("""
        ## 3. A compiled Model: steps, slots, buffers

        `Model(x_in, y)` walks the graph once into steps over numbered slots. The first call at a
        batch size compiles a plan: each step's op allocates its buffers then and reuses them on
        every later call at that size.
        """),
        code("""
        x_in = Input((784,))
        model = Model(x_in, Dense(256, 10)(Dense(784, 256, "relu")(x_in)))
        xb = np.random.default_rng(0).standard_normal((64, 784)).astype(np.float32)
        model(xb).sum().backward()                        # compiles the plan for batch 64

        plan = pynn.graphviz.compiled_plan(model)
        for i, (step, op) in enumerate(zip(model.graph.steps, plan.ops)):
            buffers = {k: v.shape for k, v in op._buffers.items()}
            print(f"step {i}: {op!r:32s} slots {step.ins} -> {step.out}  buffers {buffers}")
        first = [id(b) for b in plan.buffers()]
        model(xb).sum().backward()                        # the next step: the same arrays
        print("buffers reused:", first == [id(b) for b in plan.buffers()])
        show(model, plan=True, rankdir="TB")
        """),
        md("""
        ## 4. Eager against compiled

        The same two layers run eagerly (each op recorded on the tape, then walked back) and as
        the compiled plan (a flat loop over steps on reused buffers, one tape node), forward and
        backward, the median of several timed runs after a warm-up.
        """),
        code("""
        dense1, dense2 = model.layers


        def eager_step():
            out = dense2(dense1(Tensor(xb)))
            out.sum().backward()


        def compiled_step():
            model(xb).sum().backward()


        def median_ms(fn, repeats=30):
            fn()                                          # warm-up
            times = []
            for _ in range(repeats):
                start = time.perf_counter()
                fn()
                times.append(time.perf_counter() - start)
            return 1000 * float(np.median(times))


        eager, compiled = median_ms(eager_step), median_ms(compiled_step)
        print(f"eager {eager:.3f} ms, compiled {compiled:.3f} ms per step (batch 64)")
        """),
    ]


NOTEBOOKS = {"moons_mlp.ipynb": moons, "mnist_mlp.ipynb": mnist_mlp, "mnist_cnn.ipynb": mnist_cnn,
             "seq_mnist_lstm.ipynb": seq_mnist_lstm, "words_transformer.ipynb": words_transformer,
             "engine_tour.ipynb": engine_tour, "fashion_resnet.ipynb": fashion_resnet,
             "transfer_fashion.ipynb": transfer_fashion}


def build(name):
    nb = new_notebook(cells=NOTEBOOKS[name]())
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    for i, cell in enumerate(nb.cells):     # stable ids, so rebuilding gives the same file
        cell["id"] = f"{name.split('.')[0].replace('_', '-')}-{i:02d}"
    nbformat.validate(nb)
    return nb


def main(out_dir=HERE):
    for name in NOTEBOOKS:
        path = Path(out_dir) / name
        nbformat.write(build(name), str(path))
        print("wrote", path)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else HERE)
