# The typed contract between the Python layer and the kernels.
#
# Every code that crosses from Python into the compiled kernels is declared
# here once: the activation, loss and optimizer enums (cpdef: the kernels
# cimport them as C enums, and Python, tests included, imports the same
# names from descend._contract as IntEnum-like classes, e.g.
# Activation.RELU or Loss.SOFTMAX_CROSS_ENTROPY) and the struct of an
# optimizer's settings. Nobody re-types an integer code.

cpdef enum Activation:
    IDENTITY = 0
    SIGMOID = 1
    TANH = 2
    RELU = 3
    LEAKY_RELU = 4
    ELU = 5
    SOFTPLUS = 6
    GELU = 7

cpdef enum Loss:
    MEAN_SQUARED_ERROR = 0
    BINARY_CROSS_ENTROPY = 1
    SOFTMAX_CROSS_ENTROPY = 2

cpdef enum OptimizerKind:
    SGD = 0
    ADAGRAD = 1
    RMSPROP = 2
    ADAM = 3

cdef struct OptimizerConfig:
    int kind              # an OptimizerKind
    double momentum       # SGD, RMSprop
    bint nesterov         # SGD
    double rho            # RMSprop: decay of the squared-gradient average
    bint centered         # RMSprop
    double beta1, beta2   # Adam
    bint amsgrad          # Adam
    bint decoupled        # Adam: decoupled weight decay (AdamW)
    double epsilon
