"""A character-level causal transformer that learns English words and makes up new ones.

Data: the word list ../shared/data/words/american-english, filtered to lowercase a-z words of
3 or more letters (63,737 words); 10% of them, picked at random, are held out for validation.
Each word is a sequence "." w1 ... wn "." (the dot marks both ends): the model reads the
characters up to position t and predicts the one at t + 1. The loss is the cross-entropy in
nats per character (each letter and the closing "." count as one character), averaged over
real characters only (the padding after a word is not scored).

Model: token Embedding + learned positional embedding, then `--layers` pre-norm blocks
(LayerNorm -> MultiHeadAttention with a causal mask -> residual; LayerNorm -> Dense 4x GELU ->
Dense -> residual), a final LayerNorm and a Dense layer to the 27 character logits.

    python examples/words_transformer.py --data-dir ../shared/data

prints the validation loss during training, a few sampled words, and a `final:` line.
benchmarks/words_transformer_torch.py trains the same model in PyTorch on the same batches.
"""
import argparse
import os
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

import pynn
from pynn import Input, Model, Tensor
from pynn.activations import gelu
from pynn.layers import Dense, Embedding, LayerNorm, MultiHeadAttention
from pynn.optimizers import AdamW

ALPHABET = ".abcdefghijklmnopqrstuvwxyz"        # 0 = "." (start and end of a word)
VOCAB = len(ALPHABET)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.strip().split("\n\n")[0])
    p.add_argument("--steps", type=int, default=3000, help="training steps (default: %(default)s)")
    p.add_argument("--batch-size", type=int, default=64,
                   help="words per step (default: %(default)s)")
    p.add_argument("--lr", type=float, default=2e-3,
                   help="peak learning rate, cosine-decayed to 0 (default: %(default)s)")
    p.add_argument("--embed", type=int, default=64,
                   help="embedding width (default: %(default)s)")
    p.add_argument("--heads", type=int, default=4, help="attention heads (default: %(default)s)")
    p.add_argument("--layers", type=int, default=2,
                   help="transformer blocks (default: %(default)s)")
    p.add_argument("--eval-every", type=int, default=500,
                   help="steps between validation losses (default: %(default)s)")
    p.add_argument("--samples", type=int, default=12,
                   help="new words to sample at the end (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0,
                   help="seed of the split, the init, the batches and the sampling "
                        "(default: %(default)s)")
    p.add_argument("--data-dir", default=None,
                   help="folder holding words/american-english (default: $PYNN_DATA_DIR, "
                        "else ../shared/data beside the repository)")
    p.add_argument("--limit", type=int, default=None, metavar="N",
                   help="use only N words (quick runs, CI)")
    return p.parse_args(argv)


# -- data ------------------------------------------------------------------------------------
def load_words(data_dir=None, limit=None, seed=0):
    """(train_words, val_words): lowercase a-z words of 3+ letters, 10% held out at random."""
    folder = Path(data_dir or os.environ.get("PYNN_DATA_DIR") or
                  Path(__file__).resolve().parents[1].parent / "shared" / "data")
    lines = (folder / "words" / "american-english").read_text(encoding="utf-8").split("\n")
    words = sorted({w for w in lines if len(w) >= 3 and w.isascii() and w.isalpha()
                    and w.islower()})
    rng = np.random.default_rng(seed)
    words = [words[i] for i in rng.permutation(len(words))]
    if limit:
        words = words[:limit]
    n_val = max(1, len(words) // 10)
    return words[n_val:], words[:n_val]


def encode(words, block):
    """ids (n, block) of "." + word, targets (n, block) of word + ".", mask (n, block): 1 where
    the target is a real character."""
    n = len(words)
    x = np.zeros((n, block), np.int64)
    y = np.zeros((n, block), np.int64)
    mask = np.zeros((n, block), np.float32)
    for i, w in enumerate(words):
        ids = [ALPHABET.index(c) for c in w]
        x[i, 1:len(ids) + 1] = ids
        y[i, :len(ids)] = ids                # y[i, len(ids)] = 0: the closing "."
        mask[i, :len(ids) + 1] = 1
    return x, y, mask


def batches(n, batch_size, steps, seed):
    """The index of each step's words: shuffled passes over the training set."""
    rng = np.random.default_rng(seed + 1)
    order = np.empty(0, np.int64)
    for _ in range(steps):
        if len(order) < batch_size:
            order = np.concatenate([order, rng.permutation(n)])
        yield order[:batch_size]
        order = order[batch_size:]


# -- model -----------------------------------------------------------------------------------
def build_model(block, embed, heads, layers):
    ids = Input((block,))                    # character ids (a Model passes them as floats)
    x = Embedding(VOCAB, embed)(ids)         # (None, block, embed)
    x = x + Embedding(block, embed)(Tensor(np.arange(block)))     # + position embedding
    for _ in range(layers):
        h = LayerNorm(embed)(x)
        x = x + MultiHeadAttention(embed, heads, causal=True)(h)
        h = LayerNorm(embed)(x)
        x = x + Dense(4 * embed, embed)(gelu(Dense(embed, 4 * embed)(h)))
    logits = Dense(embed, VOCAB)(LayerNorm(embed)(x))
    return Model(ids, logits)


def masked_cross_entropy(logits, targets, mask):
    """Mean -log p(target) over the positions where mask is 1 (nats per character)."""
    onehot = np.zeros(logits.shape, logits.dtype)
    np.put_along_axis(onehot, targets[..., None], 1.0, axis=-1)
    weights = onehot * (mask / mask.sum())[..., None]
    return -(logits.log_softmax(-1) * Tensor(weights, dtype=logits.dtype)).sum()


def evaluate(model, x, y, mask, batch_size=500):
    """Validation loss in nats per character."""
    total = 0.0
    with pynn.no_grad():
        model.eval()
        for i in range(0, len(x), batch_size):
            logits = model(x[i:i + batch_size]).data.astype(np.float64)
            logp = logits - logits.max(-1, keepdims=True)
            logp -= np.log(np.exp(logp).sum(-1, keepdims=True))
            picked = np.take_along_axis(logp, y[i:i + batch_size, :, None], -1)[..., 0]
            total -= float((picked * mask[i:i + batch_size]).sum())
        model.train()
    return total / float(mask.sum())


def sample(model, block, n, rng):
    """n new words, one character at a time from the model's predicted distribution."""
    seq = np.zeros((n, block), np.int64)
    done = np.zeros(n, bool)
    with pynn.no_grad():
        model.eval()
        for t in range(block - 1):
            logits = model(seq).data[:, t].astype(np.float64)
            p = np.exp(logits - logits.max(-1, keepdims=True))
            p /= p.sum(-1, keepdims=True)
            nxt = np.array([rng.choice(VOCAB, p=row) for row in p])
            nxt[done] = 0
            seq[:, t + 1] = nxt
            done |= nxt == 0
            if done.all():
                break
        model.train()
    return ["".join(ALPHABET[i] for i in row[1:]).split(".")[0] for row in seq]


def lr_at(step, steps, lr):
    """Cosine decay from lr to 0 over the run, after a 100-step linear warm-up."""
    warm = min(100, steps // 10 or 1)
    if step < warm:
        return lr * (step + 1) / warm
    return 0.5 * lr * (1 + np.cos(np.pi * (step - warm) / max(1, steps - warm)))


def train(model, train_set, val_set, args):
    """Train with AdamW and the warm-up + cosine schedule; return [(step, train loss,
    validation loss)] every --eval-every steps, and the seconds spent."""
    opt = AdamW(args.lr, weight_decay=0.01)
    start, curve = time.perf_counter(), []
    x, y, mask = train_set
    bar = tqdm(batches(len(x), args.batch_size, args.steps, args.seed), total=args.steps)
    for step, idx in enumerate(bar):
        opt.lr = lr_at(step, args.steps, args.lr)
        loss = masked_cross_entropy(model(x[idx]), y[idx], mask[idx])
        loss.zero_grad()
        loss.backward()
        opt.update(model.parameters)
        bar.set_postfix(loss=f"{loss.item():.4f}", refresh=False)
        if (step + 1) % args.eval_every == 0 or step + 1 == args.steps:
            curve.append((step + 1, loss.item(), evaluate(model, *val_set)))
            tqdm.write(f"step {step + 1}: train loss {curve[-1][1]:.4f}, "
                       f"validation loss {curve[-1][2]:.4f} nats/char")
    return curve, time.perf_counter() - start


def prepare(args):
    """The split and its encoding: (train words, (x, y, mask) for training and validation,
    block)."""
    train_words, val_words = load_words(args.data_dir, args.limit, args.seed)
    block = max(len(w) for w in train_words + val_words) + 1
    print(f"words: {len(train_words)} training, {len(val_words)} validation (lowercase a-z, "
          f"3+ letters); block {block}")
    return train_words, encode(train_words, block), encode(val_words, block), block


def main(argv=None):
    args = parse_args(argv)
    pynn.manual_seed(args.seed)
    train_words, train_set, val_set, block = prepare(args)
    model = build_model(block, args.embed, args.heads, args.layers)
    model.summary()
    curve, seconds = train(model, train_set, val_set, args)
    words = sample(model, block, args.samples, np.random.default_rng(args.seed))
    print("sampled words:", " ".join(words))
    known = set(train_words)
    novel = sum(w not in known for w in words)
    print(f"final: steps={args.steps} val_loss={curve[-1][2]:.4f} train_loss={curve[-1][1]:.4f} "
          f"novel_samples={novel}/{len(words)} sec_per_step={seconds / args.steps:.4f}")
    return model, curve, words


if __name__ == "__main__":
    main()
