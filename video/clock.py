"""One clock for a file whose timestamps start again: MPEG-TS recordings joined end to end (a
recorder restarted, a broadcast cut and spliced) carry each part's own clock, and FFmpeg's own
reader runs them on, one part after the other. So do these, the same way for every stream.

Where a stream's timestamp goes back more than JUMP_BACK_S, or ahead more than JUMP_AHEAD_S
(FFmpeg's thresholds for formats that allow it), a new part starts. The first stream to show it
decides the part's offset: the part starts where the file's last packet ended, so the streams
keep the offsets they had to each other inside each part. Frames come out of a decoder after
their packets, so a frame's part is found by the same jump in its own stream's frame times."""

from __future__ import annotations

TS_DISCONT = 0x0200  # AVFMT_TS_DISCONT: the format lets timestamps start again (MPEG-TS)
JUMP_BACK_S = 0.1
JUMP_AHEAD_S = 10.0


def may_restart(container) -> bool:
    """The container's format allows timestamps that start again."""
    return bool(int(getattr(container.format, "flags", 0) or 0) & TS_DISCONT)


def demux_on_clock(container, stream):
    """(the packets of `stream`, the file's running clock or None): where the format may
    restart, every stream's packets are read and set the clock, and only `stream`'s come out;
    elsewhere `stream`'s alone are read, on the file's own clock (None)."""
    if not may_restart(container):
        return container.demux(stream), None
    clock = FileClock()

    def packets():
        for packet in container.demux():
            clock.see(packet)
            if packet.stream.index == stream.index:
                yield packet

    return packets(), clock


def _jumped(previous: float | None, now: float) -> bool:
    return previous is not None and (now < previous - JUMP_BACK_S or now > previous + JUMP_AHEAD_S)


class FileClock:
    """Packets in file order in (`see`), every stream's; frames' times out on one running clock
    (`frame_time`). `offsets[k]` is added to the timestamps of part k."""

    def __init__(self):
        self.offsets = [0.0]
        self._packet_part: dict = {}  # stream index -> (its part, its last packet time as stored)
        self._frame_part: dict = {}  # stream index -> (its part, its last frame time as stored)
        self._end = None  # where the file's packets so far end, on the running clock

    @property
    def restarts(self) -> int:
        return len(self.offsets) - 1

    def see(self, packet):
        """A demuxed packet of any stream, in the file's order."""
        stamp = packet.dts if packet.dts is not None else packet.pts
        if stamp is None:
            return
        stored = float(stamp * packet.time_base)
        index = packet.stream.index
        part, previous = self._packet_part.get(index, (0, None))
        if _jumped(previous, stored):
            part += 1
            if part == len(self.offsets):  # the first stream to start again
                self.offsets.append((self._end or 0.0) - stored)
        self._packet_part[index] = (part, stored)
        end = stored + self.offsets[min(part, len(self.offsets) - 1)] + \
            float((packet.duration or 0) * packet.time_base)
        self._end = end if self._end is None else max(self._end, end)

    def frame_time(self, index: int, stored: float) -> float:
        """A frame of stream `index` stamped `stored` (seconds), on the running clock."""
        part, previous = self._frame_part.get(index, (0, None))
        if _jumped(previous, stored):
            part += 1
        self._frame_part[index] = (part, stored)
        return stored + self.offsets[min(part, len(self.offsets) - 1)]
