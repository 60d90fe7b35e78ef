import sys

from mobilenetv2.cli import main

if __name__ == "__main__":
    sys.exit(main())
