"""The opening of a script that records every Numba compilation it does, for the tests that
check a run compiles nothing (tests/test_wheel.py, tests/test_precompile.py): the script then
prints ``compiled N names...`` with RECORD_COMPILES_REPORT."""

RECORD_COMPILES = '''
from numba.core import event

compiled = []                 # "module.function" of every Numba compilation of this run


class Record(event.Listener):
    def on_start(self, ev):
        pass

    def on_end(self, ev):
        fn = ev.data["dispatcher"].py_func
        compiled.append(f"{fn.__module__}.{fn.__qualname__}")


event.register("numba:compile", Record())
'''

RECORD_COMPILES_REPORT = '\nprint("compiled", len(compiled), " ".join(sorted(set(compiled))))\n'


def compiled_count(stdout):
    """N from the script's ``compiled N ...`` line."""
    (line,) = [line for line in stdout.splitlines() if line.startswith("compiled ")]
    return int(line.split()[1]), line
