"""Activation functions of Dense layers, by name.

The math lives in the compiled kernels (``csrc/descend/_activations.pxd``);
this module maps names to kernel codes and documents each function.

========== ================================================== ==========================
name       forward a = f(z)                                   derivative f'(z)
========== ================================================== ==========================
identity   z                                                  1
sigmoid    1 / (1 + exp(-z))                                  a (1 - a)
tanh       tanh(z)                                            1 - a^2
relu       max(z, 0)                                          1 if z > 0 else 0 (0 at 0)
leaky_relu z if z > 0 else alpha z    (alpha = 0.01)          1 if z > 0 else alpha
elu        z if z > 0 else alpha (exp(z) - 1) (alpha = 1)     1 if z > 0 else a + alpha
softplus   log(1 + exp(z)), as max(z,0) + log1p(exp(-abs(z))) sigmoid(z)
gelu       z Phi(z), the exact erf form                       Phi(z) + z phi(z)
========== ================================================== ==========================

``softmax`` (and ``sigmoid`` on the last layer) may also be named as the last
layer's activation when the loss is the matching cross-entropy: the layer
then outputs logits and the loss applies the link, fused and stable.

References
----------
Hendrycks & Gimpel (2016), "Gaussian Error Linear Units (GELUs)", eq. for
GELU(x) = x Phi(x); PyTorch's ``approximate='none'``. Clevert et al. (2016),
"Fast and Accurate Deep Network Learning by Exponential Linear Units", ELU.
Maas et al. (2013), leaky ReLU.
"""

from descend._validation import Options, check

ACTIVATIONS = {
    "identity": 0, "sigmoid": 1, "tanh": 2, "relu": 3,
    "leaky_relu": 4, "elu": 5, "softplus": 6, "gelu": 7,
}
ALIASES = {None: "identity", "linear": "identity"}
# Output-only activations: links fused into a loss.
LINKS = {"softmax": "softmax_cross_entropy", "sigmoid": "binary_cross_entropy"}
DEFAULT_ALPHA = {"leaky_relu": 0.01, "elu": 1.0}
# ReLU-family layers default to He initialization (He et al. 2015).
RELU_FAMILY = ("relu", "leaky_relu", "elu", "gelu")


def canonical_name(activation):
    """The canonical activation name; ValueError (an unknown name) or TypeError
    (not a str) naming the choices."""
    names = sorted(ACTIVATIONS) + ["softmax", "linear"]
    name = check(activation, "activation", [Options(*names), None])
    return ALIASES.get(name, name)
