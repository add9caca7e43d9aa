"""The exactsnn command-line interface (import name ``exactsnn_cli``)."""
