"""The .pyi stubs of the compiled modules agree with the modules.

Each compiled module of descend (csrc/descend/*.pyx) has a stub beside it
(src/descend/<module>.pyi) that type checkers and editors read. This test
fails when a stub and its module disagree: a public name (function, class,
constant) in one and not the other, a public class member (method,
attribute, property, enum member) in one and not the other, an enum value
that differs, or a function whose parameters (names, order, which have
defaults) differ. (mypy's stubtest agrees with these stubs, apart from
Cython's internals; it is not a test dependency.)
"""
import ast
import enum
import importlib
import importlib.machinery
import inspect
from pathlib import Path

import pytest

import descend
from descend._train import TeamSize

PACKAGE = Path(descend.__file__).parent
# _cyutility is Cython's utility code shared by the modules (setup.py's
# SHARED_UTILITY): its names (array, Enum, memoryview) are Cython's, not
# descend's, and no code imports it by name, so it has no stub
SHARED_UTILITY = "_cyutility"
COMPILED = sorted({path.name.split(".")[0] for suffix in importlib.machinery.EXTENSION_SUFFIXES
                   for path in PACKAGE.glob(f"_*{suffix}")} - {SHARED_UTILITY})

# Python classes of compiled modules keep attributes on their instances: an
# instance shows them (cdef classes declare theirs on the type)
INSTANCES = {"descend._train.TeamSize": lambda: TeamSize(2)}


def public(name):
    return not name.startswith("_")


def runtime_names(module):
    """Public names the module defines (not those it imports)."""
    names = {}
    for name, value in vars(module).items():
        if not public(name) or inspect.ismodule(value):
            continue
        if (inspect.isclass(value) or callable(value)) and \
                getattr(value, "__module__", module.__name__) != module.__name__:
            continue
        names[name] = value
    return names


def stub_tree(module_name):
    path = PACKAGE / f"{module_name.rsplit('.', 1)[1]}.pyi"
    return ast.parse(path.read_text(), filename=str(path))


def stub_names(body):
    """{name: node} of the public top-level definitions of a stub body."""
    names = {}
    for node in body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names[node.name] = node
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names[node.target.id] = node
        elif isinstance(node, ast.Assign):
            names.update((t.id, node) for t in node.targets if isinstance(t, ast.Name))
    return {name: node for name, node in names.items() if public(name) or name == "__init__"}


def stub_parameters(node):
    """[(name, has_default)] of a stub function, without self."""
    args = node.args
    positional = args.posonlyargs + args.args
    defaults = [False] * (len(positional) - len(args.defaults)) + [True] * len(args.defaults)
    params = list(zip([a.arg for a in positional], defaults))
    params += [(a.arg, d is not None) for a, d in zip(args.kwonlyargs, args.kw_defaults)]
    return [p for p in params if p[0] != "self"]


def runtime_parameters(function):
    """[(name, has_default)] of a compiled function or method, without self."""
    signature = inspect.signature(function)
    return [(p.name, p.default is not inspect.Parameter.empty)
            for p in signature.parameters.values() if p.name != "self"]


def init_parameters(cls):
    """[(name, has_default)] of a class's __init__, without self.

    A cdef class's __init__ is a slot without a signature (or with
    (*args, **kwargs)): Cython embeds the real one (embedsignature) as the
    first line of the class docstring, with C types before the names
    ("int loss"), dropped here."""
    try:
        signature = inspect.signature(cls.__init__)
    except ValueError:
        signature = None
    if signature is not None and not any(p.kind is p.VAR_POSITIONAL
                                         for p in signature.parameters.values()):
        return runtime_parameters(cls.__init__)
    line = cls.__doc__.splitlines()[0]
    inside = line[line.index("(") + 1:line.rindex(")")]
    params = []
    for part in (p.strip() for p in inside.split(", ")):
        if part and part != "*":
            declaration, has_default, _ = part.partition("=")
            params.append((declaration.split()[-1], bool(has_default)))
    return params


def class_member_names(cls, qualified):
    """Public members of a class: enum members, or what the type (and, for a
    Python class, an instance) defines."""
    if issubclass(cls, enum.Enum):
        return {member.name for member in cls}
    names = {name for klass in cls.__mro__ if klass is not object
             for name in vars(klass) if public(name)}
    if qualified in INSTANCES:
        names |= {name for name in vars(INSTANCES[qualified]()) if public(name)}
    return names


def test_every_compiled_module_has_a_stub_and_the_package_is_marked_typed():
    assert COMPILED, "no compiled module found beside descend/__init__.py"
    missing = [m for m in COMPILED if not (PACKAGE / f"{m}.pyi").is_file()]
    assert not missing, f"compiled modules without a .pyi stub: {missing}"
    assert (PACKAGE / "py.typed").is_file()


@pytest.mark.parametrize("module_name", [f"descend.{m}" for m in COMPILED])
def test_the_stub_names_what_the_module_defines(module_name):
    module = importlib.import_module(module_name)
    runtime, stub = set(runtime_names(module)), set(stub_names(stub_tree(module_name).body))
    assert sorted(runtime - stub) == [], f"{module_name}: not in the stub"
    assert sorted(stub - runtime) == [], f"{module_name}: in the stub, not in the module"


@pytest.mark.parametrize("module_name", [f"descend.{m}" for m in COMPILED])
def test_the_stub_classes_and_functions_match_the_module(module_name):
    module = importlib.import_module(module_name)
    runtime = runtime_names(module)
    for name, node in stub_names(stub_tree(module_name).body).items():
        value = runtime[name]
        if isinstance(node, ast.FunctionDef):
            assert stub_parameters(node) == runtime_parameters(value), f"{module_name}.{name}"
        if not isinstance(node, ast.ClassDef):
            continue
        qualified = f"{module_name}.{name}"
        members = stub_names(node.body)
        expected = class_member_names(value, qualified)
        assert sorted(set(members) - {"__init__"}) == sorted(expected), qualified
        if issubclass(value, enum.Enum):
            stub_values = {member: ast.literal_eval(node.value) for member, node in members.items()}
            assert stub_values == {m.name: m.value for m in value}, f"{qualified} values"
        if "__init__" in members:
            assert stub_parameters(members["__init__"]) == init_parameters(value), \
                f"{qualified}.__init__"
        for member, member_node in members.items():
            if isinstance(member_node, ast.FunctionDef) and member != "__init__" and \
                    not member_node.decorator_list:
                assert stub_parameters(member_node) == runtime_parameters(
                    getattr(value, member)), f"{qualified}.{member}"


def test_a_stub_that_disagrees_is_caught():
    # the checks above fail on a wrong stub: a renamed parameter, a missing default
    node = ast.parse("def gemv_py(a, x, z): ...").body[0]
    assert stub_parameters(node) != runtime_parameters(descend._blas.gemv_py)
    node = ast.parse("def effective_n_threads(n_threads): ...").body[0]
    assert stub_parameters(node) != runtime_parameters(descend._openmp.effective_n_threads)
