"""Config values checked against the type hints of config fields and network arguments."""

from typing import Literal

import pytest

from gan.core.registry import ConfigError
from gan.core.typecheck import coerce


def test_a_literal_hint_takes_its_values_and_names_them_for_any_other():
    # a network of one's own with `act: Literal["relu", "tanh"]` stopped `gan train` in a traceback
    assert coerce("tanh", Literal["relu", "tanh"], "k") == "tanh"
    with pytest.raises(ConfigError, match=r"^k: expected one of 'relu', 'tanh', got 'gelu'$"):
        coerce("gelu", Literal["relu", "tanh"], "k")
    with pytest.raises(ConfigError, match="expected one of 1, 2, got true"):  # (True == 1 in Python)
        coerce(True, Literal[1, 2], "k")


def test_a_tuple_hint_gives_a_tuple_of_its_length():
    # tuple[int, ...] arguments reached the constructor as lists
    assert coerce([1, 2], tuple[int, ...], "k") == (1, 2) and coerce([1, 2], tuple[int, int], "k") == (1, 2)
    assert coerce([1, 2], list[int], "k") == [1, 2] and coerce([3], tuple, "k") == (3,)
    with pytest.raises(ConfigError, match=r"k: expected a list of 2 \(tuple\[int, int\]\), got \[1, 2, 3\]"):
        coerce([1, 2, 3], tuple[int, int], "k")
    with pytest.raises(ConfigError, match=r"k\[1\]: expected float, got 'a'"):
        coerce([1, "a"], tuple[float, ...], "k")


def test_a_hint_no_config_value_fills_is_a_config_error_naming_the_key():
    with pytest.raises(ConfigError, match=r"model.generator_args.shape: its type hint set is not one a config value "
                                          r"can fill: int, float, bool, str"):
        coerce([1], set, "model.generator_args.shape")


@pytest.mark.parametrize("text", ["1" * 5000, "[" * 5000 + "]" * 5000])
def test_quoted_text_past_pythons_limits_for_a_number_is_one_line(text):
    """The hint that reads a quoted value without its quotes (`steps = "5"`) let Python's own refusals
    through: a quoted integer of 5,000 digits was a ValueError traceback ("Exceeds the limit (4300
    digits)"), brackets 5,000 deep a RecursionError."""
    with pytest.raises(ConfigError, match=r"^data.resolution: expected int, got '(1|\[){79}\.\.\. \(") as caught:
        coerce(text, int, "data.resolution")
    assert len(str(caught.value)) < 200
