"""Small parsing and error helpers shared by the command-line front doors."""
import functools
import math
from typing import Callable

import click

from stylegan_unlearn.device import DEFAULT_DEVICE, DEVICE_HELP
from stylegan_unlearn.errors import MissingDependencyError, OptionError
from stylegan_unlearn.ranges import parse_int_ranges

class IntRanges(click.ParamType):
    """click type for seed lists: '0-63', '3,17,40-45'."""

    name = "ranges"

    def convert(self, value, param, ctx):
        if isinstance(value, list):
            return value
        try:
            return parse_int_ranges(value)
        except ValueError as err:
            self.fail(str(err), param, ctx)


class FiniteFloat(click.ParamType):
    """click type for a float that must be a finite number (NaN and ±inf are refused where they enter)."""

    name = "float"

    def convert(self, value, param, ctx):
        try:
            number = float(value)
        except (TypeError, ValueError):
            self.fail(f"{value!r} is not a number", param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        return number


FINITE_FLOAT = FiniteFloat()


def error_line(err: BaseException) -> str:
    """One line for an error: the message, or 'FILE: reason' for operating-system errors."""
    if isinstance(err, OSError) and err.strerror and err.filename:
        return f"{err.filename}: {err.strerror}"
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    return "; ".join(lines) or type(err).__name__


def one_line_errors(function: Callable) -> Callable:
    """Decorate a click command's function: the library's exceptions become one-line errors.

    `OptionError` (options that do not fit together) becomes a usage error (exit status 2); any other
    ValueError or OSError, or a `MissingDependencyError`, a one-line error (exit status 1).
    """
    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        try:
            return function(*args, **kwargs)
        except click.ClickException:
            raise
        except OptionError as err:
            raise click.UsageError(error_line(err)) from None
        except (ValueError, OSError, MissingDependencyError) as err:
            raise click.ClickException(error_line(err)) from None
    return wrapper


def sampling_options(command):
    """The options every sampling command shares: truncation, noise mode, batch size, device."""
    options = [
        click.option("--trunc", "truncation_psi", type=FINITE_FLOAT, default=1.0, show_default=True,
                     help="Truncation psi."),
        click.option("--noise-mode", type=click.Choice(["const", "random", "none"]), default="const",
                     show_default=True, help="Noise inputs; 'const' makes a seed's sample reproducible."),
        click.option("--batch", "batch_size", type=click.IntRange(min=1), default=16, show_default=True,
                     help="Samples generated per batch."),
        click.option("--device", default=DEFAULT_DEVICE, show_default=True, help=DEVICE_HELP),
    ]
    for option in reversed(options):
        command = option(command)
    return command
