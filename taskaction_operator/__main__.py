"""``python -m taskaction_operator``: the same command line as the ``taskaction-operator`` script."""

import sys

from taskaction_operator.cli import main

if __name__ == "__main__":
    sys.exit(main())
