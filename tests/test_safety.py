"""No code path loads a file that could run code: every torch.load passes weights_only=True, and torch.jit.load (which
runs a TorchScript archive's code) appears only behind minclip.pretrained.load_state_dict's allow_torchscript."""
import ast
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = ("minclip", "baselines", "benchmarks", "scripts", "tests")
# The one place that may call torch.jit.load: (file, enclosing function).
TORCHSCRIPT_PATH = ("minclip/pretrained.py", "load_state_dict")


def sources():
    """(name, source) for every .py file in FOLDERS and every notebook code cell (IPython `%` and `!` lines blanked)."""
    for folder in FOLDERS:
        for path in sorted((ROOT / folder).rglob("*.py")):
            yield str(path.relative_to(ROOT)), path.read_text(encoding="utf-8")
    for path in sorted((ROOT / "notebooks").rglob("*.ipynb")):
        cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
        for i, cell in enumerate(cells):
            if cell["cell_type"] == "code":
                lines = "".join(cell["source"]).splitlines()
                code = "\n".join("" if line.lstrip().startswith(("%", "!")) else line for line in lines)
                yield f"{path.relative_to(ROOT)} cell {i}", code


def dotted(node) -> str:
    """`torch.jit.load` for the call target torch.jit.load; "" for anything that is not a dotted name."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    return ".".join([node.id, *reversed(parts)]) if isinstance(node, ast.Name) else ""


def calls(name: str, source: str):
    """(call name, line, enclosing function, call node) for every torch.load and torch.jit.load call in `source`."""
    def visit(node, function):
        for child in ast.iter_child_nodes(node):
            inner = child.name if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)) else function
            if isinstance(child, ast.Call) and dotted(child.func) in ("torch.load", "torch.jit.load"):
                yield dotted(child.func), child.lineno, function, child
            yield from visit(child, inner)
    yield from visit(ast.parse(source, filename=name), None)


def weights_only(call: ast.Call) -> bool:
    return any(k.arg == "weights_only" and isinstance(k.value, ast.Constant) and k.value.value is True
               for k in call.keywords)


def test_the_scan_finds_multi_line_calls():
    source = "def f(p):\n    return torch.load(\n        p,\n        weights_only=False,\n    )\n"
    [(name, line, function, call)] = calls("example", source)
    assert (name, line, function, weights_only(call)) == ("torch.load", 2, "f", False)


def test_every_torch_load_passes_weights_only_true():
    unsafe = [f"{name}:{line}" for name, source in sources()
              for call_name, line, _, call in calls(name, source) if call_name == "torch.load" and not weights_only(call)]
    assert not unsafe, f"torch.load without weights_only=True (it can unpickle code): {unsafe}"


def test_torchscript_is_loaded_only_behind_allow_torchscript():
    found = [(name, function) for name, source in sources()
             for call_name, _, function, _ in calls(name, source) if call_name == "torch.jit.load"]
    assert found == [TORCHSCRIPT_PATH], (f"torch.jit.load runs the archive's code; only {TORCHSCRIPT_PATH} may call "
                                         f"it, behind allow_torchscript=True. Found: {found}")
