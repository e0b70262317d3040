"""Python code for a fresh interpreter in which the export side cannot be imported: the
runtime's promise is that serving needs no TensorFlow, Keras, tf2onnx, PyTorch or
Transformers, and no module of model_defs or exporter."""

import textwrap

BLOCKED = ("tensorflow", "keras", "tf2onnx", "model_defs", "exporter", "keras_hub", "torch",
           "transformers")

# Prepended to the code a test runs with `python -c`: any import of a blocked package
# raises ImportError.
PRELUDE = textwrap.dedent(f"""
    import sys
    class Block:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in {BLOCKED!r}:
                raise ImportError("blocked: " + name)
    sys.meta_path.insert(0, Block())
""")

# `python -c RUNTIME_CLI ARGS...` is `python -m runtime ARGS...` with the blocks in place.
RUNTIME_CLI = PRELUDE + textwrap.dedent("""
    from runtime.__main__ import main
    sys.exit(main(sys.argv[1:]))
""")
