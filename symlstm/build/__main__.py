"""``python -m symlstm.build``: see :mod:`symlstm.build`."""
import sys

from .command import main

sys.exit(main())
