"""The front doors: thin click wrappers over library functions.

Each sub-command of `stylegan-unlearn` (and our `train.py`) parses its options here and calls one library
function, which raises ordinary exceptions; `cliutil.one_line_errors` turns those into one-line errors
(`OptionError` → a usage error, other `ValueError` / `OSError` → exit status 1). Nothing below this
package imports it.
"""
