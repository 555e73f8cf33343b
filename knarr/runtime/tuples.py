"""Named tuples without `collections`: importing collections (and operator,
keyword, reprlib, itertools with it) is a measurable part of knarr-runtime's
start-up, and the runtime needs only a few small record types.

    class MountOptions(record("MountOptions", "flags propagation data", (0, (), ""))):
        ...

gives a tuple subclass with a property per field, construction by position or
keyword (with defaults for the last fields), a readable repr, `_fields`,
`_make` (from an iterable of every field, unchecked: the quick way for a
parser), `_replace` and pickling; equal to a plain tuple of the same values.
"""

__all__ = ["record"]

_MISSING = object()


def record(name: str, fields: str, defaults: tuple = ()) -> type:
    """A tuple type called `name` with the space-separated `fields`."""
    names = tuple(fields.split())
    count = len(names)
    index = {f: i for i, f in enumerate(names)}
    first_default = count - len(defaults)

    def __new__(cls, *args, **kwargs):
        if len(args) > count:
            raise TypeError(f"{name}() takes {count} arguments, {len(args)} given")
        values = list(args) + [_MISSING] * (count - len(args))
        for key, value in kwargs.items():
            i = index.get(key)
            if i is None:
                raise TypeError(f"{name}() got an unexpected keyword argument {key!r}")
            if values[i] is not _MISSING:
                raise TypeError(f"{name}() got multiple values for argument {key!r}")
            values[i] = value
        for i in range(count):
            if values[i] is _MISSING:
                if i < first_default:
                    raise TypeError(f"{name}() missing argument {names[i]!r}")
                values[i] = defaults[i - first_default]
        return tuple.__new__(cls, values)

    def __repr__(self) -> str:
        inner = ", ".join(f"{f}={v!r}" for f, v in zip(names, self, strict=True))
        return f"{type(self).__name__}({inner})"

    def __getnewargs__(self):
        return tuple(self)

    def _make(cls, values):
        return tuple.__new__(cls, values)

    def _replace(self, **changes):
        return type(self)(*[changes.pop(f, v) for f, v in zip(names, self, strict=True)],
                          **changes)

    namespace = {"__slots__": (), "__new__": __new__, "__repr__": __repr__,
                 "__getnewargs__": __getnewargs__, "_replace": _replace, "_fields": names,
                 "_make": classmethod(_make)}
    for i, field in enumerate(names):
        namespace[field] = property(lambda self, i=i: self[i], doc=f"field {i}: {field}")
    return type(name, (tuple,), namespace)
