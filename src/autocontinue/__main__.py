"""``python -m autocontinue``: the same command line as ``autocontinue``."""

from .cli import main

if __name__ == "__main__":
    main()
