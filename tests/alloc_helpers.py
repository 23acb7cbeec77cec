"""What the allocation tests share: the peak memory a piece of work allocates."""
import tracemalloc


def peak_bytes(work):
    """The peak bytes (tracemalloc) that `work()` allocates above what was live before it."""
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        work()
        return tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
