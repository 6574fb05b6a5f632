"""IL2 / NL2 / EL2 against hand-computed values and their defaults."""
import math

import pytest
import torch

from stylegan_unlearn.method import repulsion as R


def test_forms_hand_computed():
    d = torch.tensor(0.5)
    assert R.il2(d, 2.0).item() == pytest.approx(4.0)
    assert R.nl2(d, 2.0).item() == pytest.approx(-1.0)
    assert R.el2(d, 2.0, alpha=3.0).item() == pytest.approx(2.0 * math.exp(-1.5), rel=1e-6)


def test_gradients_point_away_from_the_anchor():
    # Each loss decreases as d grows: dL/dd < 0, so gradient descent increases d.
    for form in R.REPULSION_FORMS:
        d = torch.tensor(0.3, requires_grad=True)
        R.repulsion_term(form, d).backward()
        assert d.grad.item() < 0, form


def test_el2_gradient_value():
    d = torch.tensor(0.2, requires_grad=True)
    R.el2(d, 100.0, alpha=4.0).backward()
    assert d.grad.item() == pytest.approx(-400.0 * math.exp(-0.8), rel=1e-6)


def test_defaults_are_the_official_settings():
    d = torch.tensor(0.0)
    assert R.repulsion_term("el2", d).item() == pytest.approx(R.DEFAULT_WEIGHTS["el2"]) == 100.0
    assert R.DEFAULT_FORM == "nl2"


def test_il2_at_zero_distance_is_finite():
    assert torch.isfinite(R.il2(torch.tensor(0.0), 1.0))


def test_unknown_form_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown repulsion"):
        R.repulsion_term("l3", torch.tensor(1.0))


def test_default_weights_depend_on_the_distance():
    assert R.default_weight("el2", "official") == 100.0 and R.default_alpha("official") == 1.0
    assert R.default_weight("nl2", "tensor-mean") == 1.0 and R.default_weight("il2", "official") == 10.0
    assert R.default_weight("el2", "relative") == 10.0 and R.default_alpha("relative") == 0.1
    assert R.DEFAULT_DISTANCE == "relative"
    d = torch.tensor(2.0)
    assert R.repulsion_term("el2", d, distance="relative").item() == pytest.approx(10 * math.exp(-0.2))
    assert R.repulsion_term("el2", d, distance="official").item() == pytest.approx(100 * math.exp(-2.0))
    with pytest.raises(ValueError, match="unknown repulsion"):
        R.default_weight("l1", "relative")
