"""The 8-byte multiplexed stream framing, fed in any pieces."""

from knarr.client import frames


def test_encode_header_layout():
    assert frames.encode(2, b"abc") == b"\x02\x00\x00\x00\x00\x00\x00\x03abc"


def test_demux_whole_frames():
    data = frames.encode(1, b"out\n") + frames.encode(2, b"err\n") + frames.encode(1, b"")
    assert frames.Demuxer().feed(data) == [(1, b"out\n"), (2, b"err\n"), (1, b"")]


def test_demux_byte_by_byte_keeps_order_and_holds_partial_frames():
    data = frames.encode(1, b"hello") + frames.encode(2, b"x" * 70000)
    demux = frames.Demuxer()
    got = []
    for i in range(0, len(data), 7):
        got += demux.feed(data[i:i + 7])
    assert got == [(1, b"hello"), (2, b"x" * 70000)]
    assert demux.pending() == 0


def test_demux_reports_pending_bytes():
    demux = frames.Demuxer()
    assert demux.feed(frames.encode(1, b"abcdef")[:10]) == []
    assert demux.pending() == 10
