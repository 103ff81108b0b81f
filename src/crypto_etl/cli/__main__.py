"""``python -m crypto_etl.cli``."""

import sys

from crypto_etl.cli import main

sys.exit(main())
