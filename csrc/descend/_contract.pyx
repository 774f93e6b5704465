# The Python side of _contract.pxd: its cpdef enums (Activation, Loss,
# OptimizerKind) become importable classes of this module.
"""Codes shared by the Python layer and the compiled kernels.

``Activation``, ``Loss`` and ``OptimizerKind`` are integer enums (members
compare equal to the kernels' C enum values): descend.activations,
descend.losses, descend.optimizers and the tests take their codes from here.
"""
__all__ = ["Activation", "Loss", "OptimizerKind"]
