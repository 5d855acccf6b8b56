"""`python -m jaxsr.pretrained`: see jaxsr/pretrained/__init__.py."""

import sys

from jaxsr.pretrained import main

sys.exit(main())
