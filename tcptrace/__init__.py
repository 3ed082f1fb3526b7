"""tcptrace: TCP connection life-cycles reconstructed from packet captures.

Data flow (one package or module per stage):
sources -> decode -> flows -> states -> analyzers -> model -> report -> cli
"""

__version__ = "0.1.0"
