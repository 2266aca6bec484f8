import sys

from stylize_rt.cli import main

sys.exit(main())
