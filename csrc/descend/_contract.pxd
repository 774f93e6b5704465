# The typed contract between the Python layer and the kernels.
#
# Every code that crosses from Python into the compiled kernels is declared
# here once: the activation, loss, optimizer and strategy enums (cpdef: the
# kernels cimport them as C enums, and Python, tests included, imports the
# same names from descend._contract as IntEnum-like classes, e.g.
# Activation.RELU or Loss.SOFTMAX_CROSS_ENTROPY), the struct of an
# optimizer's settings, and LayerSpec: what the compiled epoch loop
# (_train.EpochRunner) is told about each Dense layer, typed and checked
# once when it is built. Nobody re-types an integer code or a dict key.

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

cpdef enum Strategy:
    # the batch path of _train.EpochRunner (the table at the top of _train.pyx)
    PER_SAMPLE_SGD = 0      # batch 1, plain SGD: per sample, BLAS level 1
    TEAM_GEMM_SGD = 1       # plain SGD: the kernel update is one GEMM
    TEAM_GENERAL = 2        # every other optimizer and setting
    TEAM_BY_COLUMNS = 3     # wide kernels: layer by layer, blocks of output columns


cdef class LayerSpec:
    # One Dense layer as the compiled epoch loop sees it. The arrays are the
    # layer's live parameters and optimizer state: the loop updates them in
    # place, so they are never copied (C-contiguous float32/float64 only).
    cdef readonly object kernel         # ndarray (n_in, n_out)
    cdef readonly object bias           # ndarray (n_out,), or None (use_bias=False)
    cdef readonly tuple kernel_state    # the optimizer's state arrays, kernel's shape
    cdef readonly tuple bias_state      # the same for the bias; () without bias
    cdef readonly int activation        # an Activation
    cdef readonly double alpha          # leaky_relu slope / elu scale
    cdef readonly double dropout_rate   # dropout on the layer's input, [0, 1)
    cdef readonly double kernel_l1, kernel_l2, bias_l1, bias_l2     # penalties
    cdef readonly bint kernel_l1_proximal, bias_l1_proximal  # L1 as a step after the update
    cdef readonly bint decay_bias       # the optimizer's weight decay applies to the bias
