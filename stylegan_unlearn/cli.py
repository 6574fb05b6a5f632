"""The `stylegan-unlearn` command group.

Sub-commands live in their own modules and are imported only when invoked, so that
`stylegan-unlearn --help` stays fast and one broken optional dependency cannot break every command.
"""
import importlib

import click

# command name -> "module:click_command_attribute"
COMMANDS = {
    "train": "stylegan_unlearn.train_cli:train_command",
    "generate": "stylegan_unlearn.generate:generate_command",
    "convert": "stylegan_unlearn.convert:convert_command",
    "collect": "stylegan_unlearn.samples:collect_command",
    "evaluate": "stylegan_unlearn.evaluate:evaluate_command",
    "report": "stylegan_unlearn.report:report_command",
    "patch": "patches.patcher:patch_command",
    "demo": "stylegan_unlearn.demo:demo_command",
    "extrapolate": "stylegan_unlearn.extrapolate:extrapolate_command",
}


class LazyGroup(click.Group):
    """A click group that imports each sub-command's module on first use."""

    def list_commands(self, ctx: click.Context) -> list:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, name: str):
        spec = COMMANDS.get(name)
        if spec is None:
            return None
        module_name, attr = spec.split(":")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as err:
            if err.name and module_name.startswith(err.name):
                raise click.ClickException(f"command '{name}' is not available in this build ({err})")
            raise
        return getattr(module, attr)


@click.group(cls=LazyGroup)
@click.version_option(package_name="stylegan-unlearn")
def main() -> None:
    """Remove a feature from a pretrained StyleGAN2 generator with Adapt-then-Unlearn."""


if __name__ == "__main__":
    main()
