"""densekit.errors validators: the one positive-int check every constructor uses."""
import pytest

from densekit.errors import ArgumentError, positive_int, positive_ints


def test_positive_int_accepts_and_rejects():
    assert positive_int(3, 'channels') == 3
    for bad in (0, -1, 2.0, True, '3', None):
        with pytest.raises(ArgumentError) as info:
            positive_int(bad, 'channels')
        assert str(info.value) == f'channels must be a positive int, got {bad!r}'
        assert isinstance(info.value, ValueError) and isinstance(info.value, AssertionError)


def test_positive_ints_returns_a_list():
    assert positive_ints((2, 2, 6), 'depths') == [2, 2, 6]
    for bad in ((), [1, 0], (1, True), 3, [1.0]):
        with pytest.raises(ValueError, match='depths must be a non-empty sequence of positive'):
            positive_ints(bad, 'depths')


def test_callers_keep_their_messages():
    from densekit.backbones.rclut import RCLUTBody
    from densekit.blocks.recalibration import eca_kernel_size
    from densekit.heads.reconstruction import check_positive

    with pytest.raises(ValueError, match=r'^channels must be a positive int, got 0$'):
        eca_kernel_size(0)
    with pytest.raises(ValueError, match=r'^dim must be a positive int, got -1$'):
        check_positive('dim', -1)
    assert check_positive('dim', 4) == 4
    with pytest.raises(ArgumentError, match=r'^scale must be a positive int, got 0$'):
        RCLUTBody(scale=0)
