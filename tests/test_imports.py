"""Package structure: no import cycles between gliomaseg's modules (imports inside functions
included), and commands import only what they use."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import gliomaseg

PACKAGE = Path(gliomaseg.__file__).parent


def _module_name(path: Path) -> str:
    parts = ["gliomaseg", *path.relative_to(PACKAGE).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, modules: set[str]) -> set[str]:
    """gliomaseg modules imported anywhere in ``path`` (relative imports resolved)."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{parent}.{base}" if base else parent
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return {m for m in found if m in modules and m != name}


def test_no_import_cycles():
    """No module imports (directly or through others) a module that imports it back."""
    files = sorted(PACKAGE.rglob("*.py"))
    modules = {_module_name(p) for p in files}
    graph = {_module_name(p): _imports(p, modules) for p in files}
    state: dict[str, int] = {}
    cycles = []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append(stack[stack.index(nxt):] + [nxt] if nxt in stack else [node, nxt])
            elif nxt not in state:
                visit(nxt, [*stack, nxt])
        state[node] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert not cycles, cycles


def test_segment_path_imports_no_heavy_library():
    """Importing what `gliomaseg segment` needs for a slice model pulls in none of MONAI, ONNX
    Runtime, matplotlib, TensorBoard, the DICOM and volume readers (pydicom, highdicom,
    SimpleITK, nibabel) or the web server (each costs start-up time)."""
    code = ("import sys, gliomaseg.cli, gliomaseg.segmentation, gliomaseg.inference.predictor; "
            "print(sorted(m for m in ('monai', 'onnxruntime', 'matplotlib', 'tensorboard', 'torch.utils.tensorboard', "
            "'pydicom', 'highdicom', 'SimpleITK', 'nibabel', 'fastapi', 'uvicorn') "
            "if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]", result.stdout
