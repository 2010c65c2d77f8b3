"""`python -m wgan_fast.evaluate ...`: the same command as `wgan-fast evaluate`
(wgan_fast/commands/evaluate.py), under the module name the docs and studies use."""
import sys

from .commands.evaluate import main

if __name__ == "__main__":
    sys.exit(main())
