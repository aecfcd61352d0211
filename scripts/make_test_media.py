#!/usr/bin/env python
"""Generate the QC test clips (good, dark, blurred, frozen, shaky, idle, corrupt, truncated, ...).

    python scripts/make_test_media.py [FOLDER] [--no-real]

The logic lives in egocrowd.media.testmedia so tests and the benchmark can call it too.
"""

import sys

from egocrowd.media.testmedia import main

if __name__ == "__main__":
    sys.exit(main())
