"""densekit.palette: every caller keeps the colours it drew before the palettes were shared."""
import numpy as np
import pytest

from densekit import palette as pal


def test_class_palette_keeps_recorded_colours():
    np.testing.assert_array_equal(pal.class_palette(5, [[1, 2, 3]]),
                                  [[1, 2, 3], [217, 163, 130], [69, 78, 10], [19, 4, 44],
                                   [208, 166, 233]])
    np.testing.assert_array_equal(pal.class_palette(3), [[217, 163, 130], [69, 78, 10],
                                                         [19, 4, 44]])
    assert int(pal.class_palette(300).astype(np.int64).sum()) == 118696
    assert pal.class_palette(300).dtype == np.uint8
    np.testing.assert_array_equal(pal.class_palette(2, [[-5, 300, 7]]),
                                  [[0, 255, 7], [217, 163, 130]])


def test_box_palette_keeps_recorded_colours():
    np.testing.assert_array_equal(pal.box_palette(4), [[152, 160, 208], [246, 66, 88],
                                                       [221, 245, 108], [121, 230, 142]])
    assert pal.box_palette(0).shape == (1, 3)
    assert int(pal.box_palette(50).sum()) == 24475


def test_label_colours_and_callers_share_one_table():
    from densekit.inference import class_palette
    from densekit.tasks.medical3d import viz

    assert class_palette is pal.class_palette
    assert viz.LABEL_COLOURS is pal.LABEL_COLOURS
    np.testing.assert_array_equal(pal.LABEL_COLOURS[[1, 2, 6]],
                                  [[60, 180, 75], [230, 25, 75], [145, 30, 180]])
    np.testing.assert_array_equal(pal.label_colours(np.array([0, 8, 13])),
                                  pal.LABEL_COLOURS[[0, 1, 6]])


def test_bad_input():
    with pytest.raises(ValueError, match='num_classes'):
        pal.class_palette(-1)
    with pytest.raises(ValueError, match='num_classes'):
        pal.box_palette(2.0)
    with pytest.raises(TypeError, match='labels'):
        pal.label_colours(np.array([0.5]))
