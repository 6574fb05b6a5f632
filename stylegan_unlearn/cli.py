"""The `stylegan-unlearn` command group.

Sub-commands live in their own modules and are imported only when invoked, so that
`stylegan-unlearn --help` stays fast and one broken optional dependency cannot break every command.
"""
import importlib

import click

# command name -> ("module:click_command_attribute", one-line help shown by --help without importing)
_C = "stylegan_unlearn.commands"
COMMANDS = {
    "train": (f"{_C}.train:train_command", "Train, adapt (EWC), unlearn (repulsion) or extrapolate."),
    "generate": (f"{_C}.generate:generate_command", "Generate images and a seed-labelled contact sheet."),
    "convert": (f"{_C}.convert:convert_command", "Convert a stylegan2-pytorch checkpoint."),
    "collect": (f"{_C}.collect:collect_command", "Collect negative/positive samples as dataset zips."),
    "evaluate": (f"{_C}.evaluate:evaluate_command", "Measure PUL, FID, KID, Ret-FID and drift."),
    "report": (f"{_C}.report:report_command", "Write an HTML/Markdown report of an evaluation."),
    "patch": ("patches.patcher:patch_command", "Add --mode=adapt|unlearn to your own StyleGAN checkout."),
    "demo": ("stylegan_unlearn.demo:demo_command", "Unlearn a digit from the bundled MNIST generator."),
    "extrapolate": (f"{_C}.extrapolate:extrapolate_command", "Task-vector extrapolation baseline."),
}


class LazyGroup(click.Group):
    """A click group that imports each sub-command's module on first use."""

    def list_commands(self, ctx: click.Context) -> list:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, name: str):
        if name not in COMMANDS:
            return None
        module_name, attr = COMMANDS[name][0].split(":")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as err:
            if err.name and module_name.startswith(err.name):
                raise click.ClickException(f"command '{name}' is not available in this build ({err})")
            raise
        return getattr(module, attr)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, COMMANDS[name][1]) for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup)
@click.version_option(package_name="stylegan-unlearn")
def main() -> None:
    """Remove a feature from a pretrained StyleGAN2 generator with Adapt-then-Unlearn."""


if __name__ == "__main__":
    main()
