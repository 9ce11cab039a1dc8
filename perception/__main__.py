import sys

from perception.cli.main import main

sys.exit(main())
