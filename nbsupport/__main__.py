"""``python -m nbsupport run|list ...``: see :mod:`nbsupport.runner`."""

import sys

from nbsupport.runner import main

if __name__ == "__main__":
    sys.exit(main())
