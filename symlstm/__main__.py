"""``python -m symlstm``: the command line (see :mod:`symlstm.cli`)."""
import sys

from .cli import main


sys.exit(main())
