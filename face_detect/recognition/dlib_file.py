"""Reading dlib's own serialization format (the `.dat` files its models ship as), in NumPy.

The format, as dlib writes it: an integer is one control byte (its low nibble the number of
bytes that follow, 0x80 for negative) and then those bytes, least significant first; a float is
two such integers, a mantissa and a power of two; a string is its length and its bytes; a
std::vector its length and its items; a matrix its rows and columns, negated, and then its items
row by row; a DNN tensor a version and four sizes, then raw little-endian float32.
"""

from __future__ import annotations

import numpy as np


class DlibFormatError(ValueError):
    """The bytes are not what the reader expected at this point of the file."""


class DlibReader:
    def __init__(self, data: bytes):
        self.raw = bytes(data)
        self.data = memoryview(self.raw)
        self.pos = 0

    def _take(self, count: int) -> memoryview:
        if count < 0 or self.pos + count > len(self.data):
            raise DlibFormatError(f"the file ends early (wanted {count} bytes at byte {self.pos})")
        chunk = self.data[self.pos:self.pos + count]
        self.pos += count
        return chunk

    def integer(self) -> int:
        control = self._take(1)[0]
        size = control & 0x0F
        if size == 0 or size > 8 or control & 0x70:
            raise DlibFormatError(f"no integer at byte {self.pos - 1}")
        value = int.from_bytes(self._take(size), "little")
        return -value if control & 0x80 else value

    def real(self) -> float:
        mantissa, exponent = self.integer(), self.integer()
        return float(np.ldexp(float(mantissa), exponent))

    def text(self) -> str:
        return bytes(self._take(self.integer())).decode("latin-1")

    def flag(self) -> bool:
        return bool(self._take(1)[0])

    def reals(self, count: int) -> np.ndarray:
        return np.array([self.real() for _ in range(count)], dtype=np.float32)

    def matrix(self) -> np.ndarray:
        """A dlib matrix of floats, (rows, cols)."""
        rows, cols = -self.integer(), -self.integer()
        if rows < 0 or cols < 0:
            raise DlibFormatError(f"no matrix at byte {self.pos}")
        return self.reals(rows * cols).reshape(rows, cols)

    def vector(self, item):
        """A std::vector whose items `item()` reads."""
        return [item() for _ in range(self.integer())]

    def tensor(self) -> np.ndarray:
        """A DNN tensor (samples, k, rows, cols) of float32."""
        if self.integer() != 2:
            raise DlibFormatError(f"no tensor at byte {self.pos}")
        shape = tuple(self.integer() for _ in range(4))
        count = int(np.prod(shape))
        return np.frombuffer(self._take(4 * count), dtype="<f4").reshape(shape).astype(np.float32)

    def seek_text(self, text: str) -> bool:
        """Move past the next serialized `text` (its length byte and its characters); False
        (staying put) when there is none."""
        raw = text.encode("latin-1")
        needle = bytes([1, len(raw)]) + raw
        found = self.raw.find(needle, self.pos)
        if found < 0:
            return False
        self.pos = found + len(needle)
        return True
