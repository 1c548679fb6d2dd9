"""Write docs/notebooks/NAME.png: a small copy of each notebook's key figure, for the README's course table.

    .venv/bin/python scripts/thumbnails.py

The key figure is the image output of the code cell tagged "thumbnail" (cell metadata; JupyterLab: the property
inspector), or the notebook's last figure if no cell is tagged. Run it after re-executing the notebooks.
"""
import base64
import io
import json
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
WIDTH = 360  # pixels


def key_figure(notebook: Path) -> bytes:
    cells = [c for c in json.loads(notebook.read_text())["cells"] if c["cell_type"] == "code"]
    tagged = [c for c in cells if "thumbnail" in c.get("metadata", {}).get("tags", [])]
    for cell in tagged + cells[::-1]:
        for output in cell.get("outputs", []):
            png = output.get("data", {}).get("image/png")
            if png:
                return base64.b64decode(png)
    raise ValueError(f"{notebook.name} has no figure in its outputs; execute it first")


def main() -> None:
    out = ROOT / "docs" / "notebooks"
    out.mkdir(parents=True, exist_ok=True)
    for notebook in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        image = Image.open(io.BytesIO(key_figure(notebook))).convert("RGB")
        image.thumbnail((WIDTH, WIDTH))
        image.save(out / f"{notebook.stem}.png", optimize=True)
        print(f"{notebook.stem}.png  {image.size[0]}x{image.size[1]}")


if __name__ == "__main__":
    main()
