"""docs/backprop.md: every ```python block runs as a doctest, and every link to code
names a function or class that the linked file defines."""
import doctest
import re

from conftest import ROOT

DOC = ROOT / "docs" / "backprop.md"
PYTHON_BLOCK = re.compile(r"^```python\n(.*?)^```$", re.MULTILINE | re.DOTALL)
CODE_LINK = re.compile(r"\[`([\w.]+)`\]\((\.\./[^)#]+)\)")


def test_every_python_block_runs_as_a_doctest():
    text = DOC.read_text()
    blocks = PYTHON_BLOCK.findall(text)
    assert blocks and all(">>>" in block for block in blocks)
    # One doctest of all blocks in order: they share one namespace, as in one interpreter.
    test = doctest.DocTestParser().get_doctest("\n".join(blocks), {}, DOC.name, str(DOC), 0)
    runner = doctest.DocTestRunner(optionflags=doctest.NORMALIZE_WHITESPACE)
    runner.run(test)
    result = runner.summarize(verbose=False)
    assert result.failed == 0
    assert result.attempted > 10


def test_every_code_link_names_a_definition_in_its_file():
    links = CODE_LINK.findall(DOC.read_text())
    assert len(links) > 10
    for name, target in links:
        path = (DOC.parent / target).resolve()
        assert path.is_file(), f"{name}: {target} does not exist"
        source = path.read_text()
        # "Dense.backward_reference": a class Dense and a def backward_reference
        for part in name.split("."):
            assert re.search(rf"^\s*(def|class) {part}\b|^{part} = ", source, re.MULTILINE), \
                f"{target} defines no {part}"
