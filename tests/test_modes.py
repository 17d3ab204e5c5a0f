"""seqgan_env.modes: a module's mode inside a block, the caller's restored after it."""

import pytest
from torch import nn

from seqgan_env.modes import module_mode


@pytest.mark.parametrize("before", [True, False])
@pytest.mark.parametrize("inside", [True, False])
def test_the_block_runs_in_the_mode_asked_and_the_mode_before_is_restored(before, inside):
    model = nn.Sequential(nn.Linear(2, 2), nn.Dropout(0.5)).train(before)
    with module_mode(model, inside):
        assert model.training is inside
        assert all(m.training is inside for m in model.modules())
    assert all(m.training is before for m in model.modules())


def test_the_mode_is_restored_when_the_block_raises():
    model = nn.Dropout(0.5).train(True)
    with pytest.raises(RuntimeError, match="inside"), module_mode(model, False):
        assert not model.training
        raise RuntimeError("inside")
    assert model.training
