"""Training: the library behind `python -m training.train`.

`run(TrainConfig(...))` trains, evaluates and saves one model; see
`keras_dynconv.training.runner`. Importing this package registers the
learning-rate schedule that saved models' optimizers refer to.
"""

from keras_dynconv.training.config import TrainConfig
from keras_dynconv.training.optimization import WarmupSchedule
from keras_dynconv.training.runner import RunResult
from keras_dynconv.training.runner import run

__all__ = ["RunResult", "TrainConfig", "WarmupSchedule", "run"]
