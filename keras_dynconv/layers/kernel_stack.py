"""Make a Conv2D initializer, regularizer or constraint act on each kernel of
a `(num_kernels, kh, kw, in, out)` stack as if it were a lone Conv2D kernel.

Why: Keras computes fans from every leading axis, so one Glorot call over the
stack would make each kernel `num_kernels` times too small; and a constraint
such as `MaxNorm` must bound each kernel, not their concatenation.
"""

import keras
import tensorflow as tf


def _per_kernel_initializers(initializer, num_kernels):
    """One initializer a kernel, so that the K kernels differ.

    A Keras initializer seeded with an int, or unseeded, returns the same
    values every call: kernel k gets a copy seeded with seed + k (unseeded:
    a fresh copy, which draws its own seed). One seeded with a SeedGenerator,
    or without a seed, is called K times as it is.
    """
    config = initializer.get_config() if hasattr(initializer, "get_config") else {}
    seed = config.get("seed", "absent")
    if not (seed is None or isinstance(seed, int)):
        return [initializer] * num_kernels
    return [
        initializer.__class__.from_config(
            {**config, "seed": None if seed is None else seed + k}
        )
        for k in range(num_kernels)
    ]


class PerKernelInitializer:
    """Initialises `(num_kernels, *shape)` as num_kernels calls on `shape`.

    With `correlation` c > 0 the kernels share a common draw S:
    `W_k = (sqrt(c) S + sqrt(1 - c) E_k) / sqrt(1 + c (K - 1))`, with S and
    the E_k independent calls on `shape`. Any two kernels then have
    correlation c, and the uniform mixture `mean_k W_k` has the variance
    Var/K of the independent kernels' (c = 0) uniform mixture, whatever c:
    under a following BatchNorm, the mixed kernel starts at the same scale,
    so it learns at the same speed. What c changes is how far the mixed
    kernel moves when the attention sharpens: one kernel alone has variance
    K/(1 + c (K - 1)) times the mixture's (K at c = 0: a kernel mostly made
    of its own never-trained draw; 1.08 at c = 0.9, K = 4).

    Example:

    >>> init = PerKernelInitializer(keras.initializers.GlorotUniform(seed=1), 4)
    >>> init((4, 3, 3, 8, 16)).shape
    TensorShape([4, 3, 3, 8, 16])
    >>> stack = PerKernelInitializer("he_normal", 4, correlation=0.9)((4, 64, 64))
    >>> 0.85 < float(np.corrcoef(np.reshape(stack, (4, -1)))[0, 1]) < 0.95
    True
    """

    def __init__(self, initializer, num_kernels, correlation=0.0):
        if not 0.0 <= correlation < 1.0:
            raise ValueError(
                "`correlation` must be in [0, 1) (1 would make the kernels "
                f"identical). Received: correlation={correlation!r}"
            )
        self.correlation = float(correlation)
        initializers = _per_kernel_initializers(
            keras.initializers.get(initializer),
            num_kernels + (1 if self.correlation else 0),
        )
        self._initializers = initializers[:num_kernels]
        self._shared = initializers[num_kernels:]

    def __call__(self, shape, dtype=None):
        stack = tf.stack(
            [
                tf.convert_to_tensor(init(tuple(shape[1:]), dtype=dtype))
                for init in self._initializers
            ]
        )
        if not self.correlation:
            return stack
        c, k = self.correlation, len(self._initializers)
        shared = tf.convert_to_tensor(self._shared[0](tuple(shape[1:]), dtype=dtype))
        correlated = (c ** 0.5 * shared[None] + (1.0 - c) ** 0.5 * stack) / (
            1.0 + c * (k - 1)
        ) ** 0.5
        # A deterministic initializer (Constant, Zeros, Identity) gives K
        # equal draws: there is nothing to correlate, and the values asked
        # for are kept.
        deterministic = tf.reduce_all(tf.equal(stack, shared[None]))
        return tf.where(deterministic, stack, correlated)


@keras.saving.register_keras_serializable(package="keras_dynconv")
class PerKernelRegularizer(keras.regularizers.Regularizer):
    """Sum of `regularizer` over the kernels of a stack.

    A `Regularizer` subclass: Keras < 3.13 accepts nothing else on a weight.

    Example:

    >>> wrapped = PerKernelRegularizer(keras.regularizers.L2(0.5))
    >>> float(wrapped(tf.ones((2, 3, 3))))
    9.0
    >>> PerKernelRegularizer.from_config(wrapped.get_config()).regularizer.l2
    0.5
    """

    def __init__(self, regularizer):
        self.regularizer = keras.regularizers.get(regularizer)

    def __call__(self, stack):
        return tf.add_n(
            [self.regularizer(stack[k]) for k in range(stack.shape[0])]
        )

    def get_config(self):
        return {"regularizer": keras.regularizers.serialize(self.regularizer)}


@keras.saving.register_keras_serializable(package="keras_dynconv")
class PerKernelConstraint(keras.constraints.Constraint):
    """Applies `constraint` to each kernel of a stack.

    Example:

    >>> wrapped = PerKernelConstraint(keras.constraints.NonNeg())
    >>> type(PerKernelConstraint.from_config(wrapped.get_config()).constraint).__name__
    'NonNeg'
    """

    def __init__(self, constraint):
        self.constraint = keras.constraints.get(constraint)

    def __call__(self, stack):
        return tf.stack(
            [self.constraint(stack[k]) for k in range(stack.shape[0])]
        )

    def get_config(self):
        return {"constraint": keras.constraints.serialize(self.constraint)}


def per_kernel(regularizer=None, constraint=None):
    """Wraps whichever of `regularizer` / `constraint` is set (None stays None)."""
    return (
        PerKernelRegularizer(regularizer) if regularizer is not None else None,
        PerKernelConstraint(constraint) if constraint is not None else None,
    )
