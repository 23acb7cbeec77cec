"""Recurrent layers: SimpleRNN / RNN, LSTM and GRU, batch-first, stacked and bidirectional.

Each (layer, direction) of the stack runs as ONE op over the whole sequence
(pynn.ops.recurrent): one BLAS product for the input projection of every time step, then per
step a BLAS product for the recurrent part and one fused Numba gate kernel.

Two ways to make one, told apart by whether a hidden size is given:

* PyTorch form, ``LSTM(input_size, hidden_size, num_layers=1, bias=True, batch_first=True,
  dropout=0.0, bidirectional=False)``: two sizes (positional or by keyword). Returns the whole
  sequence by default, as torch's ``output``.
* Keras form, ``LSTM(units, return_sequences=False, return_state=False)``: ONE positional int
  (or ``units=``); the input size is read from the first input (build). Returns the last step's
  output by default, as Keras.

What a call returns (both forms; tuples are flattened, Keras-style):

* ``output``: (N, T, D*H) if ``return_sequences`` else (N, D*H), D = 2 if bidirectional. For a
  bidirectional layer the last-step output is [forward h at step T-1, backward h at step 0].
* with ``return_state=True``: ``(output, h_n)`` for RNN/GRU, ``(output, h_n, c_n)`` for LSTM.
  States are batch-first: (N, H) for a one-layer unidirectional layer, else
  (N, num_layers * D, H) in torch's order along dim 1 (layer 0 forward, layer 0 backward, layer
  1 forward, ...): torch's h_n is ``h_n.transpose(0, 1)`` of ours.

Initial states go in as extra inputs, in the same shapes: ``lstm(x, h0, c0)``, ``lstm(x, (h0,
c0))`` (torch) or ``lstm(x, initial_state=[h0, c0])`` (Keras). Without them the state starts at
zero. Weights have torch's names, layouts and init (U(-1/sqrt(H), 1/sqrt(H))):
``weight_ih_l{k}`` (G*H, in), ``weight_hh_l{k}`` (G*H, H), ``bias_ih_l{k}``, ``bias_hh_l{k}``
(G*H,), and ``..._reverse`` for the backward direction, G = 4 (LSTM), 3 (GRU), 1 (RNN); so
``torch_lstm.state_dict()`` copies name for name.
"""
import math

from ..ops import nn
from ..ops import recurrent as R
from ..tensor import Tensor, apply
from .base import Layer, uniform_


class _RNNBase(Layer):
    gates = 1
    n_states = 1
    op = None
    kind = ""
    op_option_names = ()        # the settings a subclass passes on to its op (RNN: nonlinearity)

    def __init__(self, input_size=None, hidden_size=None, num_layers=1, bias=True,
                 batch_first=True, dropout=0.0, bidirectional=False, return_sequences=None,
                 return_state=False, units=None, name=None, **op_options):
        super().__init__(name=name)
        kind = type(self).__name__
        for key in op_options:
            if key not in self.op_option_names:
                raise TypeError(f"{kind}() got an unexpected keyword argument {key!r}")
        if units is not None or hidden_size is None:     # Keras form: LSTM(units)
            if units is None:
                units, input_size = input_size, None
            elif hidden_size is not None:
                raise ValueError(f"{kind}: give either units (Keras form) or hidden_size "
                                 f"(PyTorch form), not both")
            hidden_size, keras = units, True
        else:
            keras = False
        if hidden_size is None or int(hidden_size) <= 0:
            raise ValueError(f"{kind}: the hidden size (units) must be a positive int, got "
                             f"{hidden_size!r}")
        if input_size is not None and int(input_size) <= 0:
            raise ValueError(f"{kind}: input_size must be a positive int, got {input_size!r}")
        if int(num_layers) < 1:
            raise ValueError(f"{kind}: num_layers must be at least 1, got {num_layers}")
        if not batch_first:
            raise ValueError(f"{kind}: pynn's recurrent layers are batch-first (inputs of shape "
                             f"(batch, time, features)); batch_first=False is not supported")
        if not 0 <= dropout < 1:
            raise ValueError(f"{kind}: dropout must be in [0, 1), got {dropout}")
        self.input_size = None if input_size is None else int(input_size)
        self.hidden_size, self.num_layers = int(hidden_size), int(num_layers)
        self.bias, self.dropout = bool(bias), float(dropout)
        self.bidirectional = bool(bidirectional)
        self.return_sequences = (not keras) if return_sequences is None else bool(return_sequences)
        self.return_state = bool(return_state)
        self.op_options = op_options
        self.param_names = ()
        if self.input_size is not None:
            self._make_weights(self.input_size)

    @property
    def num_directions(self):
        return 2 if self.bidirectional else 1

    def _make_weights(self, input_size):
        H, G = self.hidden_size, self.gates * self.hidden_size
        bound = 1.0 / math.sqrt(H)
        names = []
        for k in range(self.num_layers):
            size = input_size if k == 0 else H * self.num_directions
            for suffix in ("", "_reverse")[:self.num_directions]:
                shapes = {f"weight_ih_l{k}{suffix}": (G, size), f"weight_hh_l{k}{suffix}": (G, H)}
                if self.bias:
                    shapes.update({f"bias_ih_l{k}{suffix}": (G,), f"bias_hh_l{k}{suffix}": (G,)})
                for n, shape in shapes.items():
                    setattr(self, n, Tensor(uniform_(shape, bound), requires_grad=True))
                    names.append(n)
        self.param_names = tuple(names)
        self.input_size = int(input_size)

    def build(self, x, *states):
        if not self.param_names and x.ndim == 3:
            self._make_weights(x.shape[2])

    def __call__(self, x, *states, initial_state=None):
        if isinstance(x, (list, tuple)):         # layer([x, h0, c0])
            x, states = x[0], tuple(x[1:]) + states
        if len(states) == 1 and isinstance(states[0], (list, tuple)):    # lstm(x, (h0, c0))
            states = tuple(states[0])
        if initial_state is not None:
            if states:
                raise TypeError(f"{self!r}: give the initial state once (positionally or as "
                                f"initial_state=)")
            states = tuple(initial_state) if isinstance(initial_state, (list, tuple)) \
                else (initial_state,)
        return super().__call__(x, *states)

    def _state_shape(self, N):
        k = self.num_layers * self.num_directions
        return (N, self.hidden_size) if k == 1 else (N, k, self.hidden_size)

    def check_input(self, x, *states):
        if x.ndim != 3 or x.shape[2] != self.input_size:
            raise self.output_shape_error(x, f"(batch, time, {self.input_size})")
        if states and len(states) != self.n_states:
            raise ValueError(f"{self!r}: expected {self.n_states} initial state tensor(s), got "
                             f"{len(states)}")
        want = self._state_shape(x.shape[0])
        for s in states:
            if tuple(s.shape) != want:
                raise ValueError(f"{self!r}: initial state of shape {tuple(s.shape)}; expected "
                                 f"{want} for input of shape {tuple(x.shape)}")

    def forward(self, x, *states):
        H, D, L = self.hidden_size, self.num_directions, self.num_layers
        stacked = L * D > 1
        options = dict(bias=self.bias, initial=bool(states), **self.op_options)
        seq, finals = x, [[] for _ in range(self.n_states)]
        for k in range(L):
            if k and self.dropout and self.training:
                seq = apply(nn.Dropout(p=self.dropout, module=self), seq)
            outs = []
            for d in range(D):
                suffix = "_reverse" if d else ""
                ins = [seq] + [getattr(self, f"{w}_l{k}{suffix}") for w in ("weight_ih",
                                                                           "weight_hh")]
                if self.bias:
                    ins += [getattr(self, f"{b}_l{k}{suffix}") for b in ("bias_ih", "bias_hh")]
                if states:
                    ins += [apply(R.Narrow(index=(slice(None), k * D + d)), s) if stacked else s
                            for s in states]
                y = apply(self.op(reverse=bool(d), **options), *ins)
                last = 0 if d else -1
                if self.n_states == 2:          # LSTM: y holds [h | c]
                    h_seq = apply(R.Narrow(index=(Ellipsis, slice(0, H))), y)
                    finals[1].append(apply(R.Narrow(index=(slice(None), last, slice(H, 2 * H))),
                                           y))
                else:
                    h_seq = y
                finals[0].append(apply(R.Narrow(index=(slice(None), last, slice(0, H))), y))
                outs.append(h_seq)
            seq = outs[0] if D == 1 else Tensor.concat(outs, dim=2)
        if self.return_sequences:
            output = seq
        else:
            last = finals[0][-D:]
            output = last[0] if D == 1 else Tensor.concat(last, dim=1)
        if not self.return_state:
            return output
        states_out = [f[0] if not stacked else Tensor.stack(f, dim=1) for f in finals]
        return (output, *states_out)

    def config(self):
        cfg = {"input_size": self.input_size, "hidden_size": self.hidden_size,
               "num_layers": self.num_layers, "bias": self.bias, "dropout": self.dropout,
               "bidirectional": self.bidirectional, "return_sequences": self.return_sequences,
               "return_state": self.return_state}
        cfg.update(self.op_options)
        return cfg

    def __repr__(self):
        extra = "" if self.num_layers == 1 else f", num_layers={self.num_layers}"
        if self.bidirectional:
            extra += ", bidirectional=True"
        return f"{type(self).__name__}({self.input_size}->{self.hidden_size}{extra})"


class LSTM(_RNNBase):
    """Long short-term memory, as torch.nn.LSTM (gates i, f, g, o), batch-first.

    Args:
        input_size: features per time step (PyTorch form), or the number of units when it is
            the only size given (Keras form: ``LSTM(64)``, input size read from the input).
        hidden_size: features of h and c (PyTorch form).
        num_layers: stacked layers (default 1). bias: use b_ih and b_hh (default True).
        dropout: dropout on each layer's output but the last, in training mode (default 0).
        bidirectional: also run the sequence backwards and concatenate (default False).
        return_sequences: return every step's output (default: True in the PyTorch form,
            False in the Keras form). return_state: also return (h_n, c_n).
        units: the Keras name of hidden_size.

    Shape:
        input (N, T, input_size); initial states h0, c0 (N, H), or (N, num_layers * D, H)
        when stacked or bidirectional. Output (N, T, D*H) or (N, D*H); h_n, c_n as h0, c0.

    Example:
        >>> x_in = Input((28, 28))
        >>> y = Dense(64, 10)(LSTM(64)(x_in))        # Keras form: last step's output
        >>> out, h, c = LSTM(28, 64, return_state=True)(x_in)   # PyTorch form: (N, 28, 64)
    """
    gates, n_states, op = 4, 2, R.LSTMSequence


class GRU(_RNNBase):
    """Gated recurrent unit, as torch.nn.GRU (gates r, z, n), batch-first.

    Args, Shape: as LSTM, without the cell state (return_state gives (output, h_n)).

    Example:
        >>> y = GRU(32, return_sequences=True)(Input((10, 8)))     # (None, 10, 32)
    """
    gates, n_states, op = 3, 1, R.GRUSequence


class RNN(_RNNBase):
    """Elman RNN, as torch.nn.RNN: h_t = tanh(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh).

    Args: as LSTM, plus nonlinearity ("tanh", default, or "relu").

    Shape: as GRU.

    Example:
        >>> y = RNN(8, 16, nonlinearity="relu")(x)      # (N, T, 16)
        >>> y = SimpleRNN(16)(x)                       # Keras: (N, 16)
    """
    gates, n_states, op = 1, 1, R.RNNSequence
    op_option_names = ("nonlinearity",)

    def __init__(self, input_size=None, hidden_size=None, num_layers=1, nonlinearity="tanh",
                 bias=True, batch_first=True, dropout=0.0, bidirectional=False,
                 return_sequences=None, return_state=False, units=None, name=None,
                 activation=None):
        nonlinearity = activation or nonlinearity
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"RNN: nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout,
                         bidirectional, return_sequences, return_state, units, name,
                         nonlinearity=nonlinearity)


class SimpleRNN(RNN):
    """Keras's name for RNN: ``SimpleRNN(units, activation="tanh", return_sequences=False)``."""

