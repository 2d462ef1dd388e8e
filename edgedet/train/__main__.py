"""``torchrun --nproc_per_node N -m edgedet.train --data DIR ...``: the train command under torchrun."""

import sys

from edgedet.cli import cli

if __name__ == "__main__":
    cli(["train", *sys.argv[1:]], prog_name="edgedet train")
