"""The rich progress bar shows the score of the last evaluation, the final one included."""

import io

from rich.console import Console

from aimass.training.callbacks import LoopState, RichProgress


def test_the_final_validation_score_reaches_the_bar():
    out = io.StringIO()
    bar = RichProgress(metric="f1", console=Console(file=out, width=200, force_terminal=False))
    state = LoopState(epoch=1, epochs=2, step=10, total_steps=10, loss=0.5)
    bar.on_train_start(state)
    bar.on_step_end(state)
    bar.on_eval(state, {"f1": 0.25})
    bar.on_eval(state, {"f1": 0.5472})  # after the last step: no step redraws the bar
    bar.on_train_end(state)
    assert "val f1 0.5472" in out.getvalue()


def test_an_evaluation_outside_training_does_not_fail():
    bar = RichProgress(metric="f1", console=Console(file=io.StringIO()))
    bar.on_eval(LoopState(), {"f1": 0.5})
