"""Run firmware modules with the ESP32's single-precision floats, on CPython.

MicroPython on the ESP32 stores every float as an IEEE-754 float32; CPython and
the unix port use float64. This module loads firmware source through an AST
rewrite that rounds every float the code produces to float32: float literals,
the result of every arithmetic operator (including augmented assignment) and
of every call (math.sin, float(), user functions). Ints stay exact, as they do
on the ESP32. The remaining difference from the board: libm's float32 sin/cos
may be off by one ulp where this rounds the correctly rounded float64 result.

    with float32_firmware():
        import sun          # sun and everything it imports, in float32
"""

from __future__ import annotations

import ast
import importlib.abc
import importlib.util
import math
import struct
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

FIRMWARE = Path(__file__).resolve().parents[1] / "firmware"
# Where firmware modules are found, in sys.path order.
FIRMWARE_PATHS = (FIRMWARE / "lib", FIRMWARE / "lamp", FIRMWARE / "kiosk")

_pack = struct.Struct("<f").pack
_unpack = struct.Struct("<f").unpack


def f32(x):
    """x rounded to the nearest float32, if it is a float; anything else unchanged."""
    if type(x) is not float:
        return x
    try:
        return _unpack(_pack(x))[0]
    except OverflowError:
        return math.copysign(math.inf, x)


_HOOK = "__f32__"


class _Round(ast.NodeTransformer):
    def _wrap(self, node: ast.expr) -> ast.expr:
        call = ast.Call(func=ast.Name(id=_HOOK, ctx=ast.Load()), args=[node], keywords=[])
        return ast.copy_location(call, node)

    def visit_Constant(self, node: ast.Constant) -> ast.expr:
        return self._wrap(node) if type(node.value) is float else node

    def visit_BinOp(self, node: ast.BinOp) -> ast.expr:
        self.generic_visit(node)
        return self._wrap(node)

    def visit_UnaryOp(self, node: ast.UnaryOp) -> ast.expr:
        self.generic_visit(node)
        return self._wrap(node)

    def visit_Call(self, node: ast.Call) -> ast.expr:
        self.generic_visit(node)
        return self._wrap(node)

    def visit_AugAssign(self, node: ast.AugAssign) -> ast.stmt:
        self.generic_visit(node)
        target = node.target
        if not isinstance(target, ast.Name):
            return node  # attribute/subscript targets: rare in numeric code, left exact
        value = ast.BinOp(left=ast.Name(id=target.id, ctx=ast.Load()), op=node.op, right=node.value)
        assign = ast.Assign(targets=[target], value=self._wrap(ast.copy_location(value, node)))
        return ast.copy_location(assign, node)


def compile_float32(source: str, filename: str):
    tree = _Round().visit(ast.parse(source, filename))
    ast.fix_missing_locations(tree)
    return compile(tree, filename, "exec")


class _Finder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def __init__(self, roots: tuple[Path, ...]):
        self.roots = roots

    def find_spec(self, fullname, path=None, target=None):
        if "." in fullname:
            return None
        for root in self.roots:
            candidate = root / (fullname + ".py")
            if candidate.is_file():
                return importlib.util.spec_from_file_location(fullname, candidate, loader=self)
        return None

    def create_module(self, spec):
        return None

    def exec_module(self, module):
        origin = module.__spec__.origin if module.__spec__ else None
        assert origin is not None
        path = Path(origin)
        module.__dict__[_HOOK] = f32
        exec(compile_float32(path.read_text(), str(path)), module.__dict__)


def _firmware_names(roots: tuple[Path, ...]) -> set[str]:
    return {p.stem for root in roots for p in root.glob("*.py")}


# Float32 builds already made, kept across uses so each module is compiled once.
_built: dict[str, object] = {}


@contextmanager
def float32_firmware(roots: tuple[Path, ...] = FIRMWARE_PATHS) -> Iterator[None]:
    """Inside: importing a module from `roots` gives its float32 build. On exit the
    float64 modules that were loaded before are put back."""
    names = _firmware_names(roots)
    saved = {n: sys.modules.pop(n) for n in list(sys.modules) if n in names}
    sys.modules.update({n: m for n, m in _built.items() if n in names})  # type: ignore[misc]
    finder = _Finder(roots)
    sys.meta_path.insert(0, finder)
    try:
        yield
    finally:
        sys.meta_path.remove(finder)
        for n in names:
            m = sys.modules.pop(n, None)
            if m is not None:
                _built[n] = m
        sys.modules.update(saved)
