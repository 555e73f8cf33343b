"""knarr.runtime.tuples.record: the runtime's named tuples without collections."""

import pickle

import pytest

from knarr.runtime.tuples import record


class Point(record("Point", "x y z", (0,))):
    __slots__ = ()

    @property
    def total(self) -> int:
        return self.x + self.y + self.z


def test_fields_by_position_keyword_and_default():
    p = Point(1, y=2)
    assert (p.x, p.y, p.z, p.total) == (1, 2, 0, 3)
    assert p == (1, 2, 0) and isinstance(p, tuple)
    assert Point._fields == ("x", "y", "z")
    assert repr(p) == "Point(x=1, y=2, z=0)"
    assert p._replace(z=5) == Point(1, 2, 5)


def test_pickles_and_has_no_instance_dict():
    p = Point(1, 2, 3)
    assert pickle.loads(pickle.dumps(p)) == p
    with pytest.raises(AttributeError):
        p.w = 1  # type: ignore[attr-defined]


@pytest.mark.parametrize("args, kwargs, message", [
    ((1,), {}, "missing argument 'y'"),
    ((1, 2, 3, 4), {}, "takes 3 arguments"),
    ((1, 2), {"w": 1}, "unexpected keyword argument 'w'"),
    ((1, 2), {"x": 1}, "multiple values for argument 'x'"),
])
def test_bad_construction_is_a_type_error(args, kwargs, message):
    with pytest.raises(TypeError, match=message):
        Point(*args, **kwargs)


def test_make_builds_from_every_field_as_construction_does():
    made = Point._make(iter([1, 2, 3]))
    assert made == Point(1, 2, 3) and type(made) is Point and made.z == 3
