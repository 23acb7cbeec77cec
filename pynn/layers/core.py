"""Lambda: a layer made of a function of tensor ops."""
from .base import FUNCTIONS, Layer


class Lambda(Layer):
    """Wrap a function of tensors as a layer: ``Lambda(lambda x: x[:, :2] * 2)(x)``.

    Args:
        function: a function of one or more tensors returning a tensor, or the name of a
            function registered with ``@pynn.layers.register`` (only registered functions can
            be saved: a saved file never holds code).

    Example:
        >>> @pynn.layers.register
        ... def halve(x):
        ...     return x * 0.5
        >>> y = Lambda(halve)(x)
    """

    def __init__(self, function):
        super().__init__()
        if isinstance(function, str):
            if function not in FUNCTIONS:
                raise ValueError(f"Lambda: no function registered as {function!r}; decorate it "
                                 f"with @pynn.layers.register")
            function = FUNCTIONS[function]
        if not callable(function):
            raise TypeError(f"Lambda: expected a function, got {function!r}")
        self.function = function

    def forward(self, *xs):
        return self.function(*xs)

    def config(self):
        name = getattr(self.function, "__name__", None)
        if FUNCTIONS.get(name) is not self.function:
            raise ValueError(f"save: {self!r} wraps {self.function!r}, which is not registered; "
                             f"define it with def and decorate it with @pynn.layers.register "
                             f"so that it can be saved")
        return {"function": name}

    def __repr__(self):
        return f"Lambda({getattr(self.function, '__name__', self.function)!r})"
