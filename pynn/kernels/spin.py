"""Handing work between pynn's threads without waking one from sleep.

On the project's 2-core VM a thread that sleeps on a lock (a queue, the GIL) takes some 25 us to
wake: a round trip between two threads over two queues costs about 55 us (`python
benchmarks/handover.py`). Here the waiting thread polls a word of shared memory instead, with
the GIL released, and the thread that hands over stores to that word only once it has released
the GIL too, so the waiter finds the GIL free when it sees the store: the same round trip costs
1.5 us.

``ctl`` is an int64 array the threads share; each thread writes its own slots. The loads and
stores are atomic (acquire / release), so the compiler cannot hoist the load out of the loop
and a value seen is one that was stored.
"""
from numba import njit, types
from numba.extending import intrinsic

__all__ = ["post_and_wait"]


@intrinsic
def _load_acquire(typingctx, arr, i):
    """ctl[i], read with an atomic acquire load."""
    def codegen(context, builder, sig, args):
        ary = context.make_array(sig.args[0])(context, builder, args[0])
        return builder.load_atomic(builder.gep(ary.data, [args[1]]), "acquire", 8)
    return types.int64(arr, i), codegen


@intrinsic
def _store_release(typingctx, arr, i, value):
    """ctl[i] = value, with an atomic release store."""
    def codegen(context, builder, sig, args):
        ary = context.make_array(sig.args[0])(context, builder, args[0])
        builder.store_atomic(args[2], builder.gep(ary.data, [args[1]]), "release", 8)
        return context.get_dummy_value()
    return types.void(arr, i, value), codegen


@njit(cache=True, nogil=True)
def post_and_wait(ctl, post_at, value, watch_at, old, polls):
    """Store `value` to ctl[post_at] (skipped if post_at < 0), then poll ctl[watch_at] until it
    differs from `old`, at most `polls` times; return what it holds then (`old`: nothing
    changed). Both happen with the GIL released: the store is seen only once this thread no
    longer holds it."""
    if watch_at < 0 or watch_at >= ctl.size or post_at >= ctl.size:
        raise IndexError("post_and_wait: a slot outside ctl")
    if post_at >= 0:
        _store_release(ctl, post_at, value)
    for _ in range(polls):
        seen = _load_acquire(ctl, watch_at)
        if seen != old:
            return seen
    return old
