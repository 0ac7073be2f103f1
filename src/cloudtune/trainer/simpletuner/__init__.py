"""The adapter to SimpleTuner's own trainer, for every model family but `reference`.

SimpleTuner (4.10) is run as its contract says (../shared/reference/simpletuner-trainer-contract
.md): `CONFIG_BACKEND=json CONFIG_PATH=<file> python -m simpletuner.train`, one process in a
process group of its own, with its config and dataloader written to files, its raw webhook
pointed at the job's trainer webhook, the Hub token only in its environment, and a checkpoint
then SIGINT when the job is cancelled.

- `install`: which command runs it and whether it is there (a submit is refused if not).
- `config`: the files it reads, and the configs it cannot be given (refused at submit).
- `run`: running it from the trainer launcher, cancelling it, and collecting its outputs.
"""

from cloudtune.trainer.simpletuner.config import config_problems
from cloudtune.trainer.simpletuner.install import COMMAND_ENV, trainer_command, unavailable_reason
from cloudtune.trainer.simpletuner.run import GRACE_ENV, train_with_simpletuner

__all__ = [
    "COMMAND_ENV",
    "GRACE_ENV",
    "config_problems",
    "train_with_simpletuner",
    "trainer_command",
    "unavailable_reason",
]
