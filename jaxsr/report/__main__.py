"""python -m jaxsr.report: see jaxsr.report."""

import sys

from jaxsr.report import main

sys.exit(main())
