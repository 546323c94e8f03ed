"""scikit-learn without pandas: `with without_pandas(): from sklearn... import ...`.

scikit-learn (1.9) imports pandas in `sklearn.utils.fixes` whenever it is installed and uses
that module-level import nowhere: its own code looks pandas up in `sys.modules` only when it is
handed a DataFrame. A training process that never reads a table pays ~0.2 s for it (more on
a loaded machine), so pandas is hidden while scikit-learn loads; afterwards `import pandas`
works as usual, and scikit-learn accepts DataFrames as before (tests/test_data.py).
"""

import sys
from contextlib import contextmanager


@contextmanager
def without_pandas():
    if "pandas" in sys.modules or "sklearn.utils.fixes" in sys.modules:
        yield  # already paid for, or scikit-learn already loaded: nothing to keep out
        return
    sys.modules["pandas"] = None  # `import pandas` raises ImportError inside the block
    try:
        yield
    finally:
        if "pandas" in sys.modules and sys.modules["pandas"] is None:
            del sys.modules["pandas"]
