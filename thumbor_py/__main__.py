"""``python -m thumbor_py`` runs the ``thumbor-py`` command."""

import sys

from thumbor_py.cli import main

sys.exit(main())
