"""Optimizer base class: argument parsing for both call styles, per-parameter
state bookkeeping, zero_grad and state_dict.  The concrete optimizers are in
:mod:`pynn.optim.algorithms`; the public module is :mod:`pynn.optimizers`."""
import inspect
import numbers
from collections.abc import MutableMapping

import numpy as np

_ndarray = np.ndarray
_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))
_BUF = ("b0", "b1", "b2")


class _State:
    """Per-parameter state: a flat view of ``param.data`` plus state buffers."""
    __slots__ = ("param", "data", "flat", "n", "step", "fresh", "b0", "b1", "b2", "group",
                 "scalar")

    def __init__(self, param, group=0):
        self.param = param
        self.data = self.flat = self.n = None
        self.step = 0
        self.fresh = True
        self.b0 = self.b1 = self.b2 = None
        self.group = group      # 0: the optimizer's own hyper-parameters; i: param_groups[i-1]
        self.scalar = 1.0       # one scalar of state for optimizers that keep one (NAdam)


class _DefaultGroup(MutableMapping):
    """``param_groups[0]`` of an optimizer made without parameter groups: a live view of its
    hyper-parameter attributes (``opt.param_groups[0]["lr"] = 0.1`` sets ``opt.lr``)."""

    def __init__(self, opt):
        self._opt = opt

    def _keys(self):
        return ["params"] + [k for k, _ in self._opt._spec]

    def __getitem__(self, key):
        opt = self._opt
        if key == "params":
            return list(opt._params if opt._params is not None else [s.param for s in opt._last])
        if key not in self._keys():
            raise KeyError(key)
        return getattr(opt, key)

    def __setitem__(self, key, value):
        if key not in self._keys() or key == "params":
            raise KeyError(f"{key!r} is not a hyper-parameter of {type(self._opt).__name__}")
        setattr(self._opt, key, value)

    def __delitem__(self, key):
        raise KeyError("hyper-parameters cannot be deleted")

    def __iter__(self):
        return iter(self._keys())

    def __len__(self):
        return len(self._keys())


def _is_number(x):
    return isinstance(x, numbers.Real) and not isinstance(x, bool)


def _is_group_list(params):
    """True for torch.optim's list of parameter-group dicts."""
    return isinstance(params, (list, tuple)) and bool(params) and all(
        isinstance(g, dict) for g in params)


def _grad_array(g):
    return g if type(g) is _ndarray else g.data


class Optimizer:
    """Base class.  Subclasses define ``_spec`` (hyper-parameters and defaults),
    ``_buffers`` (state names), ``_required()``, ``_validate()`` and ``update()``."""
    _spec = ()
    _buffers = ()
    #: name of the one scalar of per-parameter state (in ``_State.scalar``), if any
    _scalar_state = None

    def __init_subclass__(cls, **kw):
        super().__init_subclass__(**kw)
        P = inspect.Parameter
        cls.__signature__ = inspect.Signature(
            [P("params_or_lr", P.POSITIONAL_OR_KEYWORD, default=None)]
            + [P(n, P.POSITIONAL_OR_KEYWORD, default=d) for n, d in cls._spec])

    def __init__(self, *args, **kwargs):
        name = type(self).__name__
        args = list(args)
        params = kwargs.pop("params", None)
        if args and args[0] is None:
            args.pop(0)
        elif args and not _is_number(args[0]):
            if params is not None:
                raise TypeError(f"{name}() got multiple values for 'params'")
            params = args.pop(0)
        if len(args) > len(self._spec):
            raise TypeError(f"{name}() takes at most {len(self._spec) + 1} positional arguments")
        values = dict(self._spec)
        for (key, _), a in zip(self._spec, args):
            if key in kwargs:
                raise TypeError(f"{name}() got multiple values for argument {key!r}")
            values[key] = a
        for key, v in kwargs.items():
            if key not in values:
                raise TypeError(f"{name}() got an unexpected keyword argument {key!r}")
            values[key] = v
        self.__dict__.update(values)
        self._validate()
        self._index = {}         # id(param) -> _State (the state keeps the param alive)
        self._order = []         # states in first-seen order (state_dict order)
        self._last = []          # states aligned with the last params list used
        self._pending = []       # loaded state entries awaiting their params
        self._req = self._required()
        self._hp_key = self._hp_arr = None
        self._params = None
        self._groups = []        # explicit parameter groups (dicts), as torch.optim's
        self._group_of = {}      # id(param) -> 1-based group index
        self._group_cache = []   # per group: (hyper-parameter values, hp array, required)
        if params is not None and _is_group_list(params):
            for group in params:
                self.add_param_group(group)
            return
        if params is not None:
            params = self._as_list(params)
            if not params:
                raise ValueError(f"{name} got an empty parameter list")
            if len({id(p) for p in params}) != len(params):
                raise ValueError(f"{name}: a parameter appears more than once in the list")
            self._params = params
            self._rebuild(params)

    # ---- parameter groups ----
    @property
    def param_groups(self):
        """torch.optim's list of groups: dicts of "params" and hyper-parameters. Without
        explicit groups, one group that reads and writes the optimizer's own attributes."""
        return list(self._groups) if self._groups else [_DefaultGroup(self)]

    def add_param_group(self, group):
        """Add a group ``{"params": [...], "lr": ..., ...}``: keys it leaves out take the
        optimizer's values (given to the constructor)."""
        name = type(self).__name__
        if not isinstance(group, dict) or "params" not in group:
            raise TypeError(f"{name}: a parameter group is a dict with a 'params' entry, got "
                            f"{type(group).__name__}")
        unknown = set(group) - {"params"} - set(self.hyperparams)
        if unknown:
            raise TypeError(f"{name}: parameter group has unknown keys {sorted(unknown)}; "
                            f"expected 'params' and some of {sorted(self.hyperparams)}")
        params = self._as_list(group["params"])
        if not params:
            raise ValueError(f"{name}: parameter group #{len(self._groups)} has no parameters")
        for p in params:
            if id(p) in self._group_of or (self._params and any(p is q for q in self._params)):
                raise ValueError(f"{name}: a parameter appears in more than one group")
        full = {"params": params, **self.hyperparams,
                **{k: v for k, v in group.items() if k != "params"}}
        self._view(full)._validate()
        self._groups.append(full)
        self._group_cache.append(None)
        index = len(self._groups)
        for p in params:
            self._group_of[id(p)] = index
            s = self._index.get(id(p))
            if s is not None:
                s.group = index
        self._params = [p for g in self._groups for p in g["params"]]
        self._rebuild(self._params)

    def _view(self, group):
        """A shallow stand-in optimizer whose hyper-parameters are the group's, so the
        subclasses' _validate/_hyper/_required read them as attributes."""
        view = object.__new__(type(self))
        view.__dict__.update(self.__dict__)
        view.__dict__.update({k: v for k, v in group.items() if k != "params"})
        return view

    def _group_hps(self):
        """One hp array per group index (0: the optimizer's attributes), rebuilt only for a
        group whose values changed (a scheduler setting its lr)."""
        hps = [self._hp(self._hyper())]
        keys = [k for k, _ in self._spec]
        for i, group in enumerate(self._groups):
            values = tuple(group[k] for k in keys)
            cached = self._group_cache[i]
            if cached is None or cached[0] != values:
                view = self._view(group)
                view._validate()
                cached = self._group_cache[i] = (values, np.array(view._hyper(), np.float64),
                                                 view._required())
            hps.append(cached[1])
        return hps

    # ---- hyper-parameter checks / buffer layout (overridden) ----
    def _validate(self):
        if not self.lr >= 0.0:
            raise ValueError(f"Invalid learning rate: {self.lr}")
        if not self.weight_decay >= 0.0:
            raise ValueError(f"Invalid weight_decay value: {self.weight_decay}")

    def _required(self):
        return (True,) * len(self._buffers)

    def _init_value(self, j):
        return 0.0

    # ---- state bookkeeping (cold paths) ----
    def _as_list(self, params):
        if hasattr(params, "grad") and hasattr(params, "data"):
            return [params]
        if callable(params):
            params = params()
        params = list(params)
        for p in params:
            if isinstance(p, dict):
                raise TypeError("parameter groups (dicts) are given when the optimizer is made "
                                "(Adam([{'params': ...}, ...])); update() takes Tensors")
            if not (hasattr(p, "data") and hasattr(p, "grad")):
                raise TypeError(f"expected Tensors with .data/.grad, got {type(p).__name__}")
        return params

    def _states_for(self, params):
        """Return the list of states aligned with ``params`` (fast when the same
        parameters are passed in the same order as last time)."""
        if params is None:
            if self._params is None:
                raise TypeError(f"{type(self).__name__} was created without parameters: call "
                                "update(params) or create it as "
                                f"{type(self).__name__}(params, lr=...)")
            params = self._params
        elif not isinstance(params, (list, tuple)):     # lists and subclasses pass as is
            params = self._as_list(params)
        last = self._last
        if len(last) == len(params):
            for s, p in zip(last, params):
                if s.param is not p:
                    break
            else:
                return last
        return self._rebuild(params)

    def _rebuild(self, params):
        out = []
        for p in params:
            s = self._index.get(id(p))
            if s is None or s.param is not p:
                if isinstance(p, dict):
                    self._as_list([p])              # raises the parameter-group message
                if not (hasattr(p, "data") and hasattr(p, "grad")):
                    raise TypeError(f"expected Tensors with .data/.grad, got {type(p).__name__}")
                s = self._index[id(p)] = _State(p, self._group_of.get(id(p), 0))
                self._order.append(s)
                if self._pending:
                    self._load_entry(s, self._pending.pop(0))
            out.append(s)
        self._last = out
        return out

    def _bind(self, s):
        """(Re)attach ``s`` to ``s.param.data``: checks, flat view, buffers."""
        p = s.param
        d = p.data
        where = f"{type(self).__name__}: parameter of shape {getattr(d, 'shape', '?')}"
        if not isinstance(d, _ndarray) or d.dtype not in _FLOATS:
            raise TypeError(f"{where}: data must be a float32/float64 ndarray, got "
                            f"{type(d).__name__} {getattr(d, 'dtype', '')}")
        if not d.flags.c_contiguous:
            raise ValueError(f"{where}: data is not C-contiguous (strides {d.strides}); "
                             "optimizers update parameters in place through a flat view. "
                             "Create the parameter from np.ascontiguousarray(...).")
        if not d.flags.writeable:
            raise ValueError(f"{where}: data is read-only")
        if s.n is not None and s.n != d.size and s.step > 0:
            raise ValueError(f"{where}: size changed from {s.n} since its optimizer state "
                             f"was created")
        s.data, s.flat, s.n = d, d.reshape(-1), d.size
        self._ensure(s)

    def _ensure(self, s):
        dt = s.flat.dtype
        for j, need in enumerate(self._req):
            b = getattr(s, _BUF[j])
            if need and (b is None or b.size != s.n):
                setattr(s, _BUF[j], np.full(s.n, self._init_value(j), dtype=dt))
                if j == 0:
                    s.fresh = True
            elif b is None:
                setattr(s, _BUF[j], np.empty(0, dtype=dt))
            elif b.dtype != dt:
                setattr(s, _BUF[j], b.astype(dt))
        for j in range(len(self._req), 3):
            if getattr(s, _BUF[j]) is None:
                setattr(s, _BUF[j], np.empty(0, dtype=dt))

    def _hp(self, values):
        """The packed float64 hyper-parameter array for the kernels, rebuilt only
        when a value changed (e.g. a scheduler set a new lr)."""
        if values != self._hp_key:
            self._hp_key, self._hp_arr = values, np.array(values, dtype=np.float64)
        return self._hp_arr

    def _check_layout(self):
        req = self._required()
        for cached in self._group_cache:      # a buffer any group needs is kept for all
            if cached is not None:
                req = tuple(a or b for a, b in zip(req, cached[2]))
        if req != self._req:               # e.g. amsgrad/momentum switched on mid-training
            self._req = req
            for s in self._order:
                if s.data is not None:
                    self._ensure(s)

    def _bad_grad(self, s, g):
        raise ValueError(f"{type(self).__name__}: grad of shape {g.shape} does not match "
                         f"parameter of shape {s.data.shape}")

    # ---- public API ----
    def update(self, params=None):
        """One step over `params` (Keras style), or over the params given at construction.

        This loop is the per-step hot path: about 1.5 us per parameter, most of it the
        Numba dispatch of the subclass's `_step` kernel."""
        states = self._states_for(params)
        hps = self._group_hps()
        self._check_layout()
        step = self._step
        for s in states:
            p = s.param
            g = p.grad
            if g is None:
                continue
            if p.data is not s.data:
                self._bind(s)
            if type(g) is not _ndarray:
                g = g.data
            if g.size != s.n:
                self._bad_grad(s, g)
            if g.ndim != 1:
                g = g.reshape(-1)
            s.step += 1
            step(s, g, hps[s.group])
            p._version += 1      # changed in place: a graph that saved it can't backprop now

    def _hyper(self):
        """The hyper-parameters the kernel takes, in its order."""
        raise NotImplementedError

    def _step(self, s, g, hp):
        """Update one parameter (its state `s`, flat gradient `g`) with the fused kernel."""
        raise NotImplementedError

    def step(self, closure=None):
        """PyTorch style: update the parameters given at construction.
        ``closure`` (optional) is called first and its result returned."""
        loss = closure() if closure is not None else None
        self.update(None)
        return loss

    def zero_grad(self, set_to_none=True):
        """Reset the grads of the managed parameters (those given at construction,
        else those of the last ``update``): to ``None`` by default (like torch),
        or fill them with zeros in place when ``set_to_none=False``."""
        params = self._params if self._params is not None else [s.param for s in self._last]
        for p in params:
            if set_to_none:
                p.grad = None
            elif p.grad is not None:
                _grad_array(p.grad)[...] = 0

    @property
    def hyperparams(self):
        return {k: getattr(self, k) for k, _ in self._spec}

    def state_dict(self):
        """Hyper-parameters plus per-parameter state (step count and copies of the
        buffers, shaped like the parameter) in first-seen parameter order."""
        names = [n for n, need in zip(self._buffers, self._req) if need]
        state = []
        for s in self._order:
            if s.data is None:
                state.append(None)
                continue
            e = {"step": s.step}
            if self._scalar_state:
                e[self._scalar_state] = s.scalar
            for j, n in enumerate(self._buffers):
                if n in names:
                    e[n] = getattr(s, _BUF[j]).reshape(s.data.shape).copy()
            state.append(e)
        sd = {"optimizer": type(self).__name__, "hyperparams": self.hyperparams, "state": state}
        if self._groups:        # the groups' hyper-parameters (their params are matched by order)
            sd["param_groups"] = [{k: v for k, v in g.items() if k != "params"}
                                  for g in self._groups]
        return sd

    def load_state_dict(self, sd):
        """Restore hyper-parameters and state.  States are matched to parameters
        by position: to this optimizer's parameters if it already has some, else
        to the parameters of the next ``update(params)`` call."""
        if sd.get("optimizer", type(self).__name__) != type(self).__name__:
            raise ValueError(f"state dict is for {sd['optimizer']}, not {type(self).__name__}")
        for k, v in sd.get("hyperparams", {}).items():
            setattr(self, k, v)
        self._validate()
        groups = sd.get("param_groups", [])
        if len(groups) != len(self._groups):
            raise ValueError(f"state dict has {len(groups)} parameter groups, optimizer has "
                             f"{len(self._groups)}")
        for group, saved in zip(self._groups, groups):
            group.update(saved)
        self._req = self._required()
        entries = list(sd.get("state", []))
        if not self._order:
            self._pending = entries
            return
        if len(entries) != len(self._order):
            raise ValueError(f"state dict has {len(entries)} parameter states, "
                             f"optimizer has {len(self._order)}")
        for s, e in zip(self._order, entries):
            self._load_entry(s, e)

    def _load_entry(self, s, e):
        if e is None:
            return
        self._bind(s)
        s.step = int(e.get("step", 0))
        s.fresh = False
        if self._scalar_state:
            s.scalar = float(e.get(self._scalar_state, 1.0))
        for j, n in enumerate(self._buffers):
            if n in e:
                b = np.array(e[n], dtype=s.flat.dtype).reshape(-1)
                if b.size != s.n:
                    raise ValueError(f"state {n!r} has {b.size} elements, parameter has {s.n}")
                setattr(s, _BUF[j], b)
            elif j == 0:
                s.fresh = True
        self._ensure(s)

    def __repr__(self):
        return f"{type(self).__name__}(" + ", ".join(
            f"{k}={v!r}" for k, v in self.hyperparams.items()) + ")"
