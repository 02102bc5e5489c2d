import math

import numpy as np
import pytest

from graph_engine.errors import NodeError
from graph_engine.schedule import EASINGS, Keyframe, Schedule, ScheduleError, parse_schedule


def test_constant_number_and_text():
    assert parse_schedule(1.5)(100) == 1.5
    assert parse_schedule(3)(0) == 3.0
    assert parse_schedule("2.25")(7) == 2.25
    s = parse_schedule(" 1.5 ")
    assert s.constant_value == 1.5
    assert np.array_equal(s.values(4), [1.5] * 4)


def test_a_schedule_pasted_with_its_quotes_from_a_deforum_settings_file():
    """Deforum's settings files quote every schedule; pasted with the quotes it said 'unexpected character '"':
    text strings are not allowed'."""
    for quoted in ('"0: (1.02), 30: (1.05)"', " '0: (1.02), 30: (1.05)' "):
        s = parse_schedule(quoted)
        assert np.array_equal(s.values(31), parse_schedule("0: (1.02), 30: (1.05)").values(31))
        assert s.to_text() == parse_schedule("0: (1.02), 30: (1.05)").to_text()
    e = _err('"0: (1 +)"')          # a mistake inside the quotes is shown in the schedule itself
    assert str(e).splitlines()[1] == "  0: (1 +)"
    assert _err("\"0: (1)'").position == 0         # quotes that do not pair are still refused


def test_deforums_numexpr_functions_and_comparisons():
    """Deforum's schedules are numexpr: its users write where(), comparisons and arc functions, which were
    'unknown function' or 'unexpected character'."""
    s = parse_schedule("0:(where(t % 20 < 10, 1.02, 0.98))")
    assert s(3) == 1.02 and s(13) == 0.98 and s(20) == 1.02
    assert parse_schedule("t >= 5")(5) == 1.0 and parse_schedule("t != 5")(5) == 0.0
    assert parse_schedule("(t == 2) * 3 + 1")(2) == 4.0
    assert parse_schedule("atan(1) * 4")(0) == pytest.approx(math.pi)
    assert parse_schedule("atan2(1, 1) + asin(1) + acos(1) + tanh(0) + log10(100)")(0) == \
        pytest.approx(math.pi / 4 + math.pi / 2 + 2)
    assert parse_schedule("0:(1), 10:(t>3)")(10) == 1.0        # a comparison inside a keyframe's value
    assert "unexpected character '!'" in str(_err("!t"))
    assert _err("t < ").position == 4


def test_linear_keyframes_hold_outside_range():
    s = parse_schedule("0:(1.0), 24:(1.5)")
    v = s.values(30)
    assert v.dtype == np.float64 and v.shape == (30,)
    assert v[0] == 1.0 and v[24] == 1.5 and v[29] == 1.5
    assert v[12] == pytest.approx(1.25)
    assert np.allclose(v[:25], np.linspace(1.0, 1.5, 25))
    late = parse_schedule("10:(2), 20:(4)")
    assert late(0) == 2.0 and late(15) == pytest.approx(3.0) and late(99) == 4.0


def test_expressions_of_t():
    s = parse_schedule("0:(1+0.002*sin(t/10))")
    for t in (0, 5, 17, 100):
        assert s(t) == pytest.approx(1 + 0.002 * math.sin(t / 10))
    assert parse_schedule("2**-1")(0) == 0.5
    assert parse_schedule("-2**2")(0) == -4.0          # as in Python: ** binds tighter than unary minus
    assert parse_schedule("2**3**2")(0) == 512.0       # right-associative
    assert parse_schedule("7 % 3 + 10/4 * 2")(0) == pytest.approx(1 + 5)
    assert parse_schedule("max(t, 3, 1) - min(2, t)")(5) == 3.0
    assert parse_schedule("clamp(t*2, 1, 9)").values(6).tolist() == [1, 2, 4, 6, 8, 9]
    assert parse_schedule("floor(t/2) + ceil(0.2) + abs(-1) + sqrt(16) + exp(0) + log(e) + log(8, 2)")(5) \
        == pytest.approx(2 + 1 + 1 + 4 + 1 + 1 + 3)
    assert parse_schedule("cos(pi) + tan(0)")(0) == pytest.approx(-1)
    assert parse_schedule("1e-3 * .5e2 + 1.")(0) == pytest.approx(1.05)


def test_expression_keyframes_crossfade():
    # each keyframe's expression is evaluated at the current frame and the two are blended
    s = parse_schedule("0:(t), 10:(100)")
    assert s(0) == 0 and s(10) == 100
    assert s(5) == pytest.approx(5 + (100 - 5) * 0.5)


def test_easings_shape():
    base = "0:(0) {}, 10:(1)"
    vals = {m: parse_schedule(base.format(m)).values(11) for m in EASINGS if m != "cubic"}
    assert np.allclose(vals["linear"], np.linspace(0, 1, 11))
    assert vals["ease_in"][3] < vals["linear"][3] < vals["ease_out"][3]
    assert vals["ease_in_out"][5] == pytest.approx(0.5)
    assert vals["ease_in_out"][2] < 0.2 and vals["ease_in_out"][8] > 0.8
    assert np.all(np.diff(vals["ease_in_out"]) >= 0)
    assert vals["hold"][:10].tolist() == [0] * 10 and vals["hold"][10] == 1
    for m, v in vals.items():
        assert v[0] == 0 and v[10] == 1, m


def test_cubic_passes_through_keys_and_is_smooth():
    s = parse_schedule("interp=cubic; 0:(0), 10:(10), 20:(0), 30:(5)")
    v = s.values(31)
    assert v[0] == 0 and v[10] == 10 and v[20] == 0 and v[30] == 5
    # Catmull-Rom: the tangent at a key is the slope between its neighbours, so the curve
    # overshoots the linear chord near an interior peak and the first derivative is continuous
    lin = parse_schedule("0:(0), 10:(10), 20:(0), 30:(5)").values(31)
    assert v[8] > lin[8]
    d = np.diff([s(x / 4) for x in range(121)])
    assert np.max(np.abs(np.diff(d))) < 0.2
    # two keyframes: cubic equals linear (secant tangents at the ends)
    assert np.allclose(parse_schedule("interp=cubic; 0:(1), 8:(3)").values(9), np.linspace(1, 3, 9))


def test_per_segment_easing_overrides_interp():
    s = parse_schedule("interp=cubic; 0:(0) linear, 10:(1), 20:(0)")
    assert s(5) == pytest.approx(0.5)
    assert s.keyframes[0].easing == "linear" and s.keyframes[1].easing is None and s.interp == "cubic"


def test_round_trip_and_editor_model():
    for text in ["1.5", "0:(1.0), 24:(1.5)", "interp=cubic; 0:(0), 12:(4), 24:(1)",
                 "0:(1+0.1*sin(t/8)) ease_in_out, 10:(2)", "sin(t/4)", "5:(2) hold, 9:(3)"]:
        s = parse_schedule(text)
        assert s.to_text() == text
        again = parse_schedule(s.to_text())
        assert again == s and np.array_equal(again.values(30), s.values(30))
    # lenient forms normalise: no parentheses, trailing comma
    assert parse_schedule("0: 1.0, 24: 1.5,").to_text() == "0:(1.0), 24:(1.5)"
    # an editor moves a point and writes the string back
    s = parse_schedule("0:(1.0), 24:(1.5)")
    keys = s.keyframes
    assert keys == [Keyframe(0, "1.0"), Keyframe(24, "1.5")] and keys[1].number == 1.5
    keys[1] = Keyframe(30, 2.0, "ease_out")
    keys.append(Keyframe(40, "2 + sin(t)"))
    edited = Schedule(keys, interp="cubic")
    assert edited.to_text() == "interp=cubic; 0:(1.0), 30:(2.0) ease_out, 40:(2 + sin(t))"
    assert parse_schedule(edited.to_text()) == edited
    assert s.keyframes[1].frame == 24          # the original is untouched
    assert edited.keyframes[2].number is None and edited.constant_value is None
    assert Schedule.constant(0.25).to_text() == "0.25"


def _err(text):
    with pytest.raises(ScheduleError) as info:
        parse_schedule(text).values(40)
    return info.value


@pytest.mark.parametrize("text, pos, words", [
    ("0:(1.0, 24:(1.5)", 6, "expected ')'"),
    ("0:(1.0), 24:(1.5", 16, "expected ')'"),
    ("0:(1.0) 24:(1.5)", 8, "expected ','"),
    ("0:(1.0), 12.5:(2)", 9, "whole number"),
    ("0:(1.0), 24:(1.5) bounce", 18, "unknown easing"),
    ("24:(1), 0:(2)", 8, "increasing"),
    ("0:(1 +), 5:(2)", 6, "expected a value"),
    ("0:(2t)", 4, "write 2*t"),
    ("1^2", 1, "use **"),
    ("sin(1, 2)", 8, "takes 1 argument"),
    ("clamp(t)", 7, "takes 3 arguments"),
    ("foo(2)", 0, "unknown function"),
    ("0:(1), 9:(k)", 10, "unknown name 'k'"),
    ("interp=wobbly; 0:(1)", 7, "interp="),
    ("0:(1/(t-3))", 4, "division by zero at frame 3"),
    ("0:(1), 10:(sqrt(t-5))", 11, "sqrt() is undefined at frame 1"),
    ("(-8)**(1/3)", 4, "power is undefined"),
    ("10**10**10", 2, "power overflows"),
    ("", 0, "empty"),
])
def test_errors_point_at_the_mistake(text, pos, words):
    e = _err(text)
    assert e.position == pos, str(e)
    assert words in str(e)
    lines = str(e).splitlines()
    if text:
        # the message shows the text and a caret under the offending character
        assert lines[1] == "  " + text and lines[2] == "  " + " " * pos + "^"
    assert isinstance(e, NodeError) and isinstance(e, ValueError)


@pytest.mark.parametrize("text", [
    "__import__('os')",
    "0:(__import__('os').system('echo hi'))",
    "().__class__",
    "().__class__.__bases__[0].__subclasses__()",
    "t.real",
    "lambda: 1",
    "0:(lambda x: x)",
    "globals()",
    "open('/etc/passwd')",
    "exec('1')",
    "[1, 2]",
    "{'a': 1}",
    "'1' * 3",
    "t if t else 1",
    "x",
    "sin.__call__(1)",
    "1; import os",
    "1 and 2",
])
def test_expressions_cannot_reach_python(text):
    e = _err(text)
    assert 0 <= e.position <= len(text)
    assert "^" in str(e)


def test_deep_or_long_input_fails_cleanly():
    assert "nested too deeply" in str(_err("(" * 500 + "1" + ")" * 500))
    assert "nested too deeply" in str(_err("-" * 500 + "1"))
    assert "nested too deeply" in str(_err("2**" * 500 + "1"))
    assert parse_schedule("+".join(["1"] * 4000))(0) == 4000.0    # long flat sums are fine
    assert "too long" in str(_err("1+" * 20000 + "1"))


def test_non_finite_values_are_reported():
    e = _err("0:(1), 5:(exp(t*200))")
    assert "overflows" in str(e)
    with pytest.raises(ScheduleError):
        parse_schedule(float("nan"))
    with pytest.raises(ScheduleError):
        parse_schedule(True)


def test_keyframe_validation():
    with pytest.raises(ScheduleError):
        Keyframe(-1, "1")
    with pytest.raises(ScheduleError):
        Keyframe(0, "1", "bouncy")
    with pytest.raises(ScheduleError) as info:
        Schedule([Keyframe(0, "1"), Keyframe(5, "1 +")])
    assert "keyframe at frame 5" in str(info.value)
    with pytest.raises(ScheduleError):
        Schedule([Keyframe(5, "1"), Keyframe(5, "2")])
