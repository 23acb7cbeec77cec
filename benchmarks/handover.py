"""What handing work to another thread costs: through queues, and through polled memory.

    python benchmarks/handover.py [--repeats 7] [--rounds 5000]

Prints the median microseconds of
- a round trip between two Python threads over two queue.SimpleQueue (put, the other thread
  gets and puts back, get): each side sleeps on a lock and is woken;
- the same round trip through pynn.kernels.spin.post_and_wait: each side polls a slot of an
  int64 array with the GIL released, and stores to the other's slot only once it has released
  the GIL too;
- pynn's split_batch of an empty slice on two threads, the fixed cost of a split, with the
  pool's thread polling between splits (threads.SPIN_SECONDS) and with it asleep every time
  (SPIN_SECONDS = 0 and a pause before each split).
"""
import argparse
import queue
import statistics
import threading
import time

import numpy as np

from pynn.kernels import threads
from pynn.kernels.spin import post_and_wait


def queue_round_trips(rounds):
    ask, answer = queue.SimpleQueue(), queue.SimpleQueue()

    def echo():
        while (item := ask.get()) is not None:
            answer.put(item)
    t = threading.Thread(target=echo, daemon=True)
    t.start()
    start = time.perf_counter()
    for i in range(rounds):
        ask.put(i)
        answer.get()
    elapsed = time.perf_counter() - start
    ask.put(None)
    t.join()
    return elapsed / rounds


def polled_round_trips(rounds):
    ctl = np.zeros(32, np.int64)            # slot 0: asked, slot 16: answered
    post_and_wait(ctl, -1, 0, 0, 1, 1)      # compiled (or loaded) before the timing

    def echo():
        seen = 0
        while True:
            got = post_and_wait(ctl, 16 if seen else -1, seen, 0, seen, 1 << 40)
            if got < 0:
                return
            seen = got
    t = threading.Thread(target=echo, daemon=True)
    t.start()
    start = time.perf_counter()
    for i in range(1, rounds + 1):
        post_and_wait(ctl, 0, i, 16, i - 1, 1 << 40)
    elapsed = time.perf_counter() - start
    ctl[0] = -1
    t.join()
    return elapsed / rounds


def split_costs(rounds, asleep):
    before = threads.SPIN_SECONDS
    threads.set_num_threads(1)
    threads.SPIN_SECONDS = 0.0 if asleep else before
    threads.set_num_threads(2)              # a fresh pool that polls as set
    try:
        threads.split_batch(lambda k, n0, n1: None, 2, 2)
        total = 0.0
        for _ in range(rounds):
            if asleep:
                time.sleep(2e-4)            # the pool's thread is asleep again
            start = time.perf_counter()
            threads.split_batch(lambda k, n0, n1: None, 2, 2)
            total += time.perf_counter() - start
        return total / rounds
    finally:
        threads.set_num_threads(1)
        threads.SPIN_SECONDS = before
        threads.set_num_threads(2)


def main():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--rounds", type=int, default=5000)
    args = p.parse_args()
    if not threads.blas_local_threads_available():
        raise SystemExit("NumPy's BLAS has no per-thread thread count: pynn does not split")
    rows = [("round trip, two SimpleQueues", lambda: queue_round_trips(args.rounds)),
            ("round trip, post_and_wait", lambda: polled_round_trips(args.rounds)),
            ("split_batch of nothing, pool thread polling",
             lambda: split_costs(args.rounds, asleep=False)),
            ("split_batch of nothing, pool thread asleep",
             lambda: split_costs(args.rounds // 10, asleep=True))]
    print(f"median of {args.repeats} repeats; microseconds per hand-over\n")
    print("| hand-over | us |\n|---|---:|")
    for name, fn in rows:
        times = [fn() for _ in range(args.repeats)]
        print(f"| {name} | {statistics.median(times) * 1e6:.1f} |")


if __name__ == "__main__":
    main()
