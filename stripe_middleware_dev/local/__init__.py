"""Local mode: the pipeline on one machine against moto's AWS emulator (not shipped to Lambda)."""
