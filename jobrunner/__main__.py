import sys

from jobrunner.cli import main

sys.exit(main())
