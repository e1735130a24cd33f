"""``python -m autocontinue.emulator [OPTIONS]``: the ``emulate`` command on its own."""

from .command import emulate

if __name__ == "__main__":
    emulate(prog_name="python -m autocontinue.emulator")
