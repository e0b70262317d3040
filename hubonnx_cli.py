"""`hubonnx` console script: `hubonnx export ...` (needs the [export] extra) and the runtime's
subcommands (`hubonnx fill-mask ...`, `encode`, `classify`, `generate`).

A bare program named `export` would be shadowed by the shell builtin, hence one script with
subcommands. Imports are lazy so the runtime subcommands work on a base install.
"""

import sys


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "export":
        from exporter.__main__ import main as export_main

        return export_main(argv[1:])
    from runtime.__main__ import main as runtime_main

    return runtime_main(argv)


if __name__ == "__main__":
    sys.exit(main())
