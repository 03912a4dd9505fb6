"""The simulator: Siaga run and tested without hardware (``siaga-sim``)."""
