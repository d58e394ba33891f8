import pytest

from veil.errors import VeilError
from veil.registry import Registry


def test_register_build_and_unknown_name():
    reg: Registry[int] = Registry("thing")

    @reg.register("two")
    def two(scale: int = 1) -> int:
        return 2 * scale

    assert reg.build("two", scale=3) == 6
    assert reg.names() == ["two"] and "two" in reg
    with pytest.raises(VeilError, match="unknown thing 'three'.*two"):
        reg.build("three")
    with pytest.raises(ValueError):
        reg.register("two")(two)
    with pytest.raises(VeilError, match="thing 'two': got an unexpected keyword argument 'size'"):
        reg.build("two", size=3)
