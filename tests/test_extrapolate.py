"""Extrapolation maths is exact; the CLI writes a loadable pickle and refuses bad requests."""
import pytest
import torch
from click.testing import CliRunner

from stylegan_unlearn.commands.extrapolate import extrapolate_command
from stylegan_unlearn.method.extrapolate import extrapolate
from stylegan_unlearn.method.params import select_names
from tiny import tiny_discriminator
from tiny import tiny_generator as _tiny_generator


def tiny_generator(seed):
    return _tiny_generator(seed=seed).eval()


def pkl_data(seed):
    torch.manual_seed(seed)
    D = tiny_discriminator().eval()
    return dict(G=tiny_generator(seed), D=D, G_ema=tiny_generator(seed + 1), augment_pipe=None,
                training_set_kwargs=None)


def expected(base, adapted, key, gamma):
    mine = dict(base[key].named_parameters())
    others = [dict(a[key].named_parameters()) for a in adapted]
    return {n: (p.double() + gamma * (p.double() - sum(o[n].double() for o in others) / len(others))).float()
            for n, p in mine.items()}


@pytest.mark.parametrize("gamma", [1.0, -0.5])
def test_all_parameters_follow_the_formula_for_G_and_G_ema(gamma):
    base, adapted = pkl_data(0), [pkl_data(10), pkl_data(20)]
    before = {n: t.clone() for n, t in base["G"].state_dict().items()}
    out = extrapolate(base, adapted, gamma)
    for key in ("G", "G_ema"):
        want = expected(base, adapted, key, gamma)
        for name, p in out[key].named_parameters():
            torch.testing.assert_close(p.detach(), want[name], rtol=0, atol=1e-6)
        for name, buf in out[key].named_buffers():
            assert torch.equal(buf, dict(base[key].named_buffers())[name])
    assert out["D"] is base["D"]
    assert all(torch.equal(t, base["G"].state_dict()[n]) for n, t in before.items())  # input untouched


def test_gamma_zero_is_identity_and_synthesis_selection_moves_only_those():
    base, adapted = pkl_data(0), [pkl_data(10)]
    same = extrapolate(base, adapted, 0.0)
    assert all(torch.equal(a, b) for a, b in zip(same["G"].parameters(), base["G"].parameters()))
    out = extrapolate(base, adapted, 2.0, params="synthesis")
    moving = set(select_names([n for n, _ in base["G"].named_parameters()], "synthesis"))
    want = expected(base, adapted, "G", 2.0)
    for name, p in out["G"].named_parameters():
        if name in moving:
            torch.testing.assert_close(p.detach(), want[name], rtol=0, atol=1e-6)
        else:
            assert torch.equal(p, dict(base["G"].named_parameters())[name])


def test_adapted_modules_are_accepted_and_empty_list_refused():
    base = pkl_data(0)
    net = tiny_generator(5)
    out = extrapolate(base, [net], 1.0)
    theirs = dict(net.named_parameters())
    for name, p in out["G_ema"].named_parameters():
        mine = dict(base["G_ema"].named_parameters())[name]
        torch.testing.assert_close(p.detach(), 2 * mine.detach() - theirs[name].detach(), rtol=0, atol=1e-6)
    with pytest.raises(ValueError, match="at least one adapted"):
        extrapolate(base, [], 1.0)


def test_command_writes_a_pickle_with_the_formula(tmp_path):
    from stylegan_unlearn.pkl import load_network_pkl, save_network_pkl

    base, adapted = pkl_data(0), [pkl_data(10), pkl_data(20)]
    save_network_pkl(tmp_path / "base.pkl", base)
    for i, a in enumerate(adapted):
        save_network_pkl(tmp_path / f"a{i}.pkl", a)
    out = tmp_path / "extra.pkl"
    args = ["--network", str(tmp_path / "base.pkl"), "--adapted", str(tmp_path / "a0.pkl"),
            "--adapted", str(tmp_path / "a1.pkl"), "--gamma", "0.7", "--out", str(out)]
    result = CliRunner().invoke(extrapolate_command, args)
    assert result.exit_code == 0, result.output
    loaded = load_network_pkl(out)
    want = expected(base, adapted, "G_ema", 0.7)
    for name, p in loaded["G_ema"].named_parameters():
        torch.testing.assert_close(p.detach(), want[name], rtol=0, atol=1e-6)

    again = CliRunner().invoke(extrapolate_command, args)
    assert again.exit_code != 0 and "already exists" in again.output
    missing = CliRunner().invoke(extrapolate_command, ["--network", str(tmp_path / "nope.pkl"), "--adapted",
                                                       str(tmp_path / "a0.pkl"), "--out", str(tmp_path / "x.pkl")])
    assert missing.exit_code != 0 and "does not exist" in missing.output
    onto_input = CliRunner().invoke(extrapolate_command, args[:-1] + [str(tmp_path / "a0.pkl"), "--overwrite"])
    assert onto_input.exit_code != 0 and "input" in onto_input.output
