"""The method's one option table: both front doors (our train.py and the patch blocks) read it."""
import ast
import sys

from patches import options as patch_options
from stylegan_unlearn.method import options as method_options
from stylegan_unlearn.commands.train import train_command


def _train_params():
    return {p.name: p for p in train_command.params}


def test_every_method_option_is_an_option_of_our_train_py_with_the_table_default():
    params = _train_params()
    parsed = train_command.make_context("train", ["--outdir", "unused"]).params  # nothing runs
    for entry in method_options.OPTIONS:
        param = params[entry.name]
        assert param.opts == [entry.flag]
        assert param.multiple == entry.multiple
        assert parsed[entry.name] == (() if entry.multiple else entry.default)
        if entry.kind == "choice":
            assert list(param.type.choices) == list(entry.choices)


def test_the_patch_blocks_offer_the_options_of_the_stages_a_reference_loop_trains():
    patched = {o.dest: o for o in patch_options.OPTIONS}
    for entry in method_options.OPTIONS:
        trains = set(entry.stages) & {"adapt", "unlearn"}
        assert (entry.name in patched) == bool(trains), entry.name
        if not trains:
            continue
        option = patched[entry.name]
        assert option.flag == entry.flag and option.loss_kwarg == entry.loss_kwarg
        call = ast.parse(f"f({option.click_kwargs})").body[0].value
        keywords = {k.arg: k.value for k in call.keywords}
        assert "default" not in keywords  # None means "not given": the plugin's default applies
        if entry.kind == "choice":
            assert ast.literal_eval(keywords["type"].args[0]) == list(entry.choices)


def test_stage_dependent_defaults():
    assert method_options.default("params", "adapt") == "synthesis"
    assert method_options.default("params", "unlearn") == "all"
    assert method_options.default("ewc_lambda") == 5e8 and method_options.default("fisher_samples") == 32
    assert method_options.default("repulsion") == "nl2" and method_options.default("distance") == "relative"


def test_the_table_imports_only_the_standard_library():
    """A patched reference train.py reads it at start-up, before torch."""
    tree = ast.parse(open(method_options.__file__, encoding="utf-8").read())
    imported = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
                for alias in node.names}
    imported |= {node.module.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert imported <= set(sys.stdlib_module_names), imported
    assert all(ord(ch) < 128 for entry in method_options.OPTIONS for ch in entry.help)


def test_the_penalties_and_both_plugin_signatures_default_to_the_table():
    import inspect

    import training_hooks
    import training_hooks.sg3 as sg3
    from stylegan_unlearn.method.penalties import EWCPenalty, RepulsionPenalty

    expected = {"EWC": dict(ewc_lambda=5e8, fisher_samples=32, params="synthesis"),
                "Repulsion": dict(repulsion="nl2", distance="relative", params="all")}
    for kind, classes in (("EWC", (EWCPenalty, training_hooks.EWCLoss, sg3.EWCLoss)),
                          ("Repulsion", (RepulsionPenalty, training_hooks.RepulsionLoss, sg3.RepulsionLoss))):
        for cls in classes:
            parameters = inspect.signature(cls.__init__).parameters
            for name, value in expected[kind].items():
                assert parameters[name].default == value, (cls, name)
