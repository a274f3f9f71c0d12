"""``python -m dhis2maint``: the same program as the ``dhis2maint`` command."""
import sys

from .cli import main

sys.exit(main())
