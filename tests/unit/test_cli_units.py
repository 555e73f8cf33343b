"""Sizes, durations and times as Docker's CLI (go-units) shows and reads them."""

import pytest

from knarr.cli import units

DAY, WEEK, MONTH, YEAR = 86400, 7 * 86400, 30 * 86400, 365 * 86400


@pytest.mark.parametrize("seconds,text", [
    (0.45, "Less than a second"), (1, "1 second"), (3, "3 seconds"), (59, "59 seconds"),
    (60, "About a minute"), (3 * 60, "3 minutes"), (35 * 60 + 40, "35 minutes"),
    (59 * 60, "59 minutes"), (3600, "About an hour"), (3600 + 29 * 60, "About an hour"),
    (3600 + 31 * 60, "2 hours"), (3 * 3600 + 31 * 60, "4 hours"), (DAY, "24 hours"),
    (DAY + 12 * 3600, "36 hours"), (2 * DAY, "2 days"), (13 * DAY + 5 * 3600, "13 days"),
    (2 * WEEK, "2 weeks"), (MONTH, "4 weeks"), (MONTH + 2 * WEEK, "6 weeks"),
    (2 * MONTH, "2 months"), (5 * MONTH + 2 * WEEK, "5 months"), (24 * MONTH, "24 months"),
    (24 * MONTH + 2 * WEEK, "2 years"), (3 * YEAR + 2 * MONTH, "3 years"),
])
def test_human_duration(seconds, text):
    assert units.human_duration(seconds) == text


@pytest.mark.parametrize("size,text", [(0, "0B"), (1050, "1.05kB"), (1_990_000, "1.99MB"),
                                       (999, "999B"), (1000, "1kB"), (123_456_789, "123MB")])
def test_human_size_decimal_three_digits(size, text):
    assert units.human_size(size) == text


@pytest.mark.parametrize("size,text", [(0, "0B"), (327680, "320KiB"), (64 << 20, "64MiB"),
                                       (1.5 * (1 << 20), "1.5MiB"), (1023, "1023B"),
                                       (25_270_000_000, "23.53GiB")])
def test_bytes_size_binary_four_digits(size, text):
    assert units.bytes_size(size) == text


@pytest.mark.parametrize("text,value", [("64m", 64 << 20), ("64M", 64 << 20), ("1.5g", 3 << 29),
                                        ("100", 100), ("512MiB", 512 << 20), ("2kb", 2048),
                                        ("1 g", 1 << 30)])
def test_ram_in_bytes(text, value):
    assert units.ram_in_bytes(text) == value


@pytest.mark.parametrize("text", ["foo", "m", "1.2.3", "-1", "1x", ""])
def test_ram_in_bytes_rejects(text):
    with pytest.raises(ValueError, match="invalid size"):
        units.ram_in_bytes(text)


@pytest.mark.parametrize("text,ns", [("1m30s", 90 * 10**9), ("500ms", 5 * 10**8), ("0", 0),
                                     ("1.5h", 5400 * 10**9), ("2us", 2000), ("-3s", -3 * 10**9)])
def test_go_durations(text, ns):
    assert units.parse_duration(text) == ns


@pytest.mark.parametrize("text,message", [
    ("", 'time: invalid duration ""'), ("abc", 'time: invalid duration "abc"'),
    ("s", 'time: invalid duration "s"'), ("1", 'time: missing unit in duration "1"'),
    ("1x", 'time: unknown unit "x" in duration "1x"')])
def test_go_duration_errors(text, message):
    with pytest.raises(ValueError) as info:
        units.parse_duration(text)
    assert str(info.value) == message


def test_timestamps_for_since_and_until():
    assert units.parse_timestamp("10m", now=1000.0) == "400"
    assert units.parse_timestamp("1700000000") == "1700000000"
    assert units.rfc3339_to_epoch("1970-01-02T00:00:01Z") == 86401
    assert units.rfc3339_to_epoch("2024-01-02T03:04:05+01:00") == 1704161045
    assert float(units.parse_timestamp("2024-01-02")) == 1704153600
