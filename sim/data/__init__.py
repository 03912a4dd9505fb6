"""Example site configurations the demo and the simulator run."""
