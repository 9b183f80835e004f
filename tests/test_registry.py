import pytest

from edge_vad.errors import EdgeVadError
from edge_vad.models import get_model, list_models


def test_list_models_has_stconvlstm():
    assert "stconvlstm" in list_models()


def test_unknown_model_suggests_the_nearest_name():
    with pytest.raises(EdgeVadError, match="Did you mean 'stconvlstm'"):
        get_model("stconvlstn")


@pytest.mark.parametrize("name", list_models())
def test_every_model_has_paper_and_edge_presets(name):
    entry = get_model(name)
    assert {"paper", "edge"} <= set(entry.presets)
    with pytest.raises(EdgeVadError, match="no preset"):
        entry.preset("huge")


def test_stconvlstm_rejects_a_size_the_encoder_cannot_invert():
    from edge_vad.models.stconvlstm.model import level_sizes

    assert level_sizes(227) == [55, 27, 13]
    assert level_sizes(115) == [27, 13, 6]
    with pytest.raises(EdgeVadError, match="valid sizes include"):
        level_sizes(128)
