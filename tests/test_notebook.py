"""docs/tradeoffs.ipynb: it executes without an error, and the committed copy keeps its outputs.

The notebook is executed from a copy (the committed file is never written) by a kernel of
this very interpreter: a kernelspec naming ``sys.executable`` is written to a temporary
``JUPYTER_PATH`` under a name no other kernelspec uses, so a ``python3`` kernel installed
elsewhere on the machine cannot stand in for it. Jupyter's and IPython's per-user files go
to the temporary directory too.
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbclient
import nbformat
import pytest
from ipykernel.kernelspec import install as install_kernelspec

NOTEBOOK = Path(__file__).resolve().parent.parent / "docs" / "tradeoffs.ipynb"
KERNEL = "concentric-migrate-tests"
CELL_TIMEOUT = 600
"""Seconds one cell may take; the whole notebook runs in well under two minutes."""


def code_cells(notebook: nbformat.NotebookNode) -> list[tuple[int, nbformat.NotebookNode]]:
    return [(n, cell) for n, cell in enumerate(notebook.cells, 1) if cell.cell_type == "code"]


def test_the_committed_notebook_is_executed_top_to_bottom_with_outputs() -> None:
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(notebook)
    cells = code_cells(notebook)

    assert cells, "the notebook has no code cell"
    without = [n for n, cell in cells if not cell.outputs or cell.execution_count is None]
    assert not without, (
        f"code cell(s) {without} of {NOTEBOOK.name} have no outputs: execute the notebook "
        "before committing it (the command is in its first cell)"
    )
    failed = [n for n, cell in cells if any(o.output_type == "error" for o in cell.outputs)]
    assert not failed, f"code cell(s) {failed} of {NOTEBOOK.name} were committed with an error"
    counts = [cell.execution_count for _, cell in cells]
    assert counts == list(range(1, len(cells) + 1)), (
        f"execution counts {counts}: the committed outputs are not from one run top to bottom"
    )


def test_the_notebook_executes_without_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    jupyter = tmp_path / "jupyter"
    install_kernelspec(kernel_name=KERNEL, display_name=KERNEL, prefix=str(jupyter))
    monkeypatch.setenv("JUPYTER_PATH", str(jupyter / "share" / "jupyter"))
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path / "runtime"))
    monkeypatch.setenv("JUPYTER_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("JUPYTER_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setenv("IPYTHONDIR", str(tmp_path / "ipython"))
    monkeypatch.setenv("MPLCONFIGDIR", str(tmp_path / "matplotlib"))
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    notebook.cells.append(nbformat.v4.new_code_cell("import sys\nprint(sys.executable)"))
    work = tmp_path / "work"
    work.mkdir()
    client = nbclient.NotebookClient(
        notebook,
        kernel_name=KERNEL,
        timeout=CELL_TIMEOUT,
        resources={"metadata": {"path": str(work)}},
    )

    try:
        client.execute()  # raises CellExecutionError, naming the cell, when one fails
    finally:
        nbformat.write(notebook, tmp_path / "executed.ipynb")  # kept for a look after a failure

    for n, cell in code_cells(notebook):
        assert not any(o.output_type == "error" for o in cell.outputs), f"cell {n} failed"
    # A kernel may send one print as several stream messages (the text, then its newline).
    printed = "".join(
        o.text
        for o in notebook.cells[-1].outputs
        if o.output_type == "stream" and o.name == "stdout"
    )
    assert printed.strip() == sys.executable, "the kernel ran another Python than the tests"
