"""Every op class is documented and tested: the meta-test of the op tables.

It walks every subclass of pynn.ops.base.Op (after importing every module of pynn/ops, and pynn
itself, so ops defined elsewhere are found too) and asserts that

* each class's own docstring has a line starting with `Derivative:` (its vector-Jacobian
  product; non-differentiable ops say `Derivative: none (not differentiable)`);
* each differentiable op class is named in the union of the `TORCH_CHECKED_OPS` sets and in the
  union of the `GRADCHECKED_OPS` sets that the tests/test_*.py modules define (each module lists
  the op classes it really checks against PyTorch, or by finite differences);
* every name in those sets is an op class (a typo or a renamed op would otherwise slip through).
"""
import importlib
import pkgutil
import sys
from pathlib import Path

import pynn
import pynn.ops
import pynn.plan  # noqa: F401  (ModelOp)
from pynn.ops.base import Op

TESTS = Path(__file__).parent

# Op subclasses that are not ops a user applies, so no table needs them:
NOT_IN_TABLES = {
    "_Extreme",     # pynn/ops/reduce.py: the shared base of Max and Min (which are in the tables)
    "_Buffered",    # pynn/ops/activation.py: the shared base of Elu, Selu, Silu, Mish, ...
    "_KernelActivation",  # pynn/ops/elementwise.py: the shared base of Relu, Sigmoid, Tanh
    "_Pool2d",      # pynn/ops/nn.py: the shared base of MaxPool2d and AvgPool2d
    "_Recurrent",   # pynn/ops/recurrent.py: the shared base of RNN, LSTM and GRU (in the tables)
    "_Rounding",    # pynn/ops/mathops.py: the shared base of Floor, Ceil, Round, Trunc, Sign
    "ModelOp",      # pynn/plan.py: a whole compiled Model as one tape node; its backward is the
                    # plan's steps, each of them an op in the tables (tests/test_model.py)
}
# ...and the ones among them whose docstring is not a vector-Jacobian product:
NO_DERIVATIVE_LINE = {"ModelOp"}   # it has no math of its own to state


def _import_all_ops():
    for info in pkgutil.iter_modules(pynn.ops.__path__):
        importlib.import_module(f"pynn.ops.{info.name}")


def op_classes():
    """{name: class} of every subclass of Op in pynn, at any depth (ops that tests define for
    themselves are not pynn's)."""
    _import_all_ops()
    found, stack = {}, [Op]
    while stack:
        for sub in stack.pop().__subclasses__():
            stack.append(sub)
            if not sub.__module__.startswith("pynn."):
                continue
            if sub.__name__ in found and found[sub.__name__] is not sub:
                raise AssertionError(f"two op classes are named {sub.__name__}: "
                                     f"{found[sub.__name__].__module__} and {sub.__module__}")
            found[sub.__name__] = sub
    return found


def _where(cls):
    return f"{cls.__module__}.{cls.__qualname__}"


def test_every_op_class_states_its_derivative():
    missing = []
    for name, cls in sorted(op_classes().items()):
        if name in NO_DERIVATIVE_LINE:
            continue
        doc = cls.__dict__.get("__doc__") or ""      # its own docstring, not a parent's
        if not any(line.strip().startswith("Derivative:") for line in doc.splitlines()):
            missing.append(_where(cls))
    assert not missing, ("these op classes have no 'Derivative:' line in their own docstring "
                         "(state the vector-Jacobian product, or 'Derivative: none (not "
                         "differentiable)'): " + ", ".join(missing))


def coverage_tables():
    """{set name: {test module: its set}} from every tests/test_*.py that defines one."""
    sys.path.insert(0, str(TESTS))
    tables = {"TORCH_CHECKED_OPS": {}, "GRADCHECKED_OPS": {}}
    for path in sorted(TESTS.glob("test_*.py")):
        text = path.read_text()
        if not any(key in text for key in tables):
            continue
        module = importlib.import_module(path.stem)
        for key in tables:
            if hasattr(module, key):
                tables[key][path.name] = set(getattr(module, key))
    return tables


def test_every_differentiable_op_is_checked_against_torch_and_by_finite_differences():
    ops = op_classes()
    tables = coverage_tables()
    problems = []
    for key, meaning in [("TORCH_CHECKED_OPS", "checked against PyTorch"),
                         ("GRADCHECKED_OPS", "checked by finite differences")]:
        union = set().union(*tables[key].values())
        modules = ", ".join(sorted(tables[key])) or "none"
        for name, cls in sorted(ops.items()):
            if cls.differentiable and name not in NOT_IN_TABLES and name not in union:
                problems.append(f"{_where(cls)} is differentiable but is missing from every "
                                f"{key} set (so it is not {meaning}); sets found in: {modules}. "
                                f"Check it in a test module and add {name!r} to that module's "
                                f"{key}.")
        for module, names in sorted(tables[key].items()):
            for name in sorted(names - set(ops)):
                problems.append(f"tests/{module}: {key} names {name!r}, which is no op class")
    assert not problems, "\n".join(problems)


def test_the_walk_finds_ops_from_every_ops_module():
    """The walk is not vacuous: it sees the ops of each file in pynn/ops."""
    modules = {cls.__module__ for cls in op_classes().values()}
    for info in pkgutil.iter_modules(pynn.ops.__path__):
        if info.name != "base":
            assert f"pynn.ops.{info.name}" in modules, info.name
    assert "ModelOp" in op_classes() and pynn.Tensor is not None
