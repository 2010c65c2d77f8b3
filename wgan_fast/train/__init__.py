"""Training: `train(cfg, data=None, callbacks=())` returns a TrainResult;
`python -m wgan_fast.train` is its command line.

    loop.py          the loop, top to bottom
    state.py         what a run carries from step to step (the checkpoint)
    iteration.py     one iteration (critic steps, generator step, EMA), eager or graphed
    folder.py        the run folder: resume, fresh, overwrite
    distributed.py   ranks, devices, process group, collectives
    hooks.py         callbacks (Event) and the TrainResult
    command_line.py  --help, config from arguments, exit codes
"""
from ..errors import NonFiniteError
from .command_line import main, usage
from .distributed import init_process_group, setup as setup_distributed, teardown as teardown_distributed
from .hooks import Callback, Event, TrainResult
from .loop import train, train_with_rollback

__all__ = ["train", "train_with_rollback", "main", "usage", "setup_distributed", "teardown_distributed", "init_process_group", "Callback", "Event", "TrainResult",
           "NonFiniteError"]
