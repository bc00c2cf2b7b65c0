"""`listen`'s own numeric arguments are checked by argparse (issue 10): no sound device is needed, since a
bad number is refused before anything opens."""
import pytest

from core.cli import main


@pytest.mark.parametrize("arg, value", [
    ("--hop", "nan"), ("--hop", "inf"), ("--hop", "-1"), ("--hop", "0"),
    ("--duration", "nan"), ("--duration", "inf"), ("--duration", "-5"), ("--duration", "0"),
    ("--threads", "0"), ("--threads", "-2"), ("--threads", "1.5"), ("--threads", "nan"),
    ("--rate", "0"), ("--rate", "-44100"), ("--rate", "44100.5"),
])
def test_listen_refuses_bad_numbers_with_one_usage_line(capsys, arg, value):
    with pytest.raises(SystemExit) as stopped:
        main(["listen", f"{arg}={value}"])
    assert stopped.value.code == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err
    assert "listen: error: argument " + arg in err and repr(value) in err, err
